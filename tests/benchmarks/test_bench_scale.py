"""bench_scale.py end to end on a tiny simulated world: each stage runs as its
own `mtrec` process and its time and peak memory are recorded."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_scale_records_each_stage_of_a_tiny_world(tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_scale.py"),
            "--users",
            "40",
            "--users",
            "80",
            "--sessions",
            "3",
            "--session-length",
            "10",
            "--k-core",
            "3",
            "--stages",
            "ingest",
            "validate",
            "split",
            "--params",
            str(ROOT / "params.yaml"),
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    small, large = report["sizes"]
    assert (small["users"], large["users"]) == (40, 80)
    for size in report["sizes"]:
        assert list(size["stages"]) == ["ingest", "validate", "split"]
        for stage in size["stages"].values():
            assert stage["code"] == 0 and stage["seconds"] > 0 and stage["peak_rss_mib"] > 50
            assert 0 < stage["cpu_seconds"]
        # The world's truth is written in the size's own folder, not the working directory's.
        assert (tmp_path / "work" / f"users_{size['users']}/data/raw/simulator_truth.npz").exists()
        assert not (tmp_path / "data").exists()
        assert size["processed_meta"]["n_users"] <= size["users"]
    # Twice the users, a larger log: the sizes really differ.
    assert large["ingest_summary"]["rows"] > small["ingest_summary"]["rows"]


def test_a_failing_stage_is_recorded_with_its_error(tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_scale.py"),
            "--users",
            "40",
            "--stages",
            "split",  # nothing ingested: split has no input
            "--params",
            str(ROOT / "params.yaml"),
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    stage = json.loads(out.read_text())["sizes"][0]["stages"]["split"]
    assert stage["code"] != 0 and stage["error"]
