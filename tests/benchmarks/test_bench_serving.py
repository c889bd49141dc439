"""benchmarks/bench_serving.py end to end at a toy size: a real `bentoml serve`
under a short Locust load, and the JSON it writes."""

import json
import subprocess
import sys

import pytest
from helpers import BENCHMARKS

pytestmark = pytest.mark.slow


def test_bench_serving_writes_latency_throughput_and_rss_per_level(tmp_path):
    out = tmp_path / "serving.json"
    command = [
        sys.executable,
        str(BENCHMARKS / "bench_serving.py"),
        "--synthetic",
        "--n-items",
        "60",
        "--users",
        "1",
        "4",
        "--warmup",
        "1",
        "--duration",
        "2",
        "--in-process-requests",
        "20",
        "--storm-users",  # none: no 128-user level at this size
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["model"]["with_reward_model"] is True
    assert report["in_process"]["p50_ms"] > 0
    for users in ("1", "4"):
        level = report["http"][users]
        assert level["served_200"]["requests"] > 0
        assert level["errors"] == 0
        assert {"p50_ms", "p95_ms", "p99_ms", "requests_per_s"} <= set(level["all"])
        assert level["server_rss_mib"]["after"] > 0
        assert len(level["load_average"]["before"]) == 3
    assert report["http_over_in_process_p50"]["1"] > 0
    assert "shared" in report["note"]
