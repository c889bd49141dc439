"""Serving latency and throughput: `bentoml serve` over loopback HTTP vs the model in-process.

    python benchmarks/bench_serving.py --model-dir models/sasrec-none/seed_0/best \
        [--reward-dir models/reward/<backbone>/qnetwork] [--requests 200] [--concurrency 1 8 32]

Without --model-dir it packages nothing and uses the registry's champion
(params.yaml `tracking`). The model is imported into a temporary BENTOML_HOME
and served from src/ on a free 127.0.0.1 port; every request is a
POST /recommend with a history drawn from the catalogue (fixed seed).
Reports p50/p99 latency (ms) and requests/s at each concurrency, the same for
in-process `RecommenderRuntime.recommend`, and their ratio; JSON goes to
benchmarks/results/serving.json. Request counts are bounded; loopback only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from common import free_port, stop_process, wait_for_http

ROOT = Path(__file__).resolve().parents[1]


def summarise(latencies: list[float], wall: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000.0
    return {
        "requests": len(latencies),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "requests_per_s": len(latencies) / wall,
    }


def make_requests(item_ids: list[str], count: int, history: int, k: int) -> list[dict]:
    rng = random.Random(0)
    return [
        {"history": rng.sample(item_ids, history), "k": k, "exclude_history": True}
        for _ in range(count)
    ]


def run_clients(call, bodies: list[dict], concurrency: int) -> dict[str, float]:
    def timed(body: dict) -> float:
        began = time.perf_counter()
        call(body)
        return time.perf_counter() - began

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(timed, bodies))
    return summarise(latencies, time.perf_counter() - began)


def champion_dirs(scratch: Path) -> tuple[Path, Path | None]:
    from mtrec.config import load_params
    from mtrec.lifecycle.package import download_champion
    from mtrec.lifecycle.tracking import configure_tracking

    tracking = load_params(ROOT / "params.yaml").tracking
    configure_tracking(tracking, ROOT)
    _, recommender, reward = download_champion(tracking, "champion", scratch)
    return recommender, reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--reward-dir", type=Path)
    parser.add_argument("--requests", type=int, default=200, help="per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serving.json")
    args = parser.parse_args()
    if args.requests > 5000 or max(args.concurrency) > 64:
        parser.error("bounded benchmark: at most 5000 requests and 64 clients")

    scratch = Path(tempfile.mkdtemp(prefix="mtrec-bench-serving-"))
    os.environ["BENTOML_HOME"] = str(scratch / "bentoml")  # before bentoml is imported
    import torch

    torch.set_num_threads(1)
    from mtrec.lifecycle.package import import_bento_model
    from mtrec.serving.runtime import RecommenderRuntime

    if args.model_dir is None:
        model_dir, reward_dir = champion_dirs(scratch / "champion")
    else:
        model_dir, reward_dir = args.model_dir, args.reward_dir
    tag = import_bento_model("mtrec-bench", model_dir, reward_dir, {"candidate": "benchmark"})

    runtime = RecommenderRuntime.load(model_dir, reward_dir)
    bodies = make_requests(runtime.item_ids, args.requests, args.history, args.k)
    for body in bodies[:5]:  # warm-up
        runtime.recommend(body["history"], body["k"], True)
    in_process = run_clients(
        lambda b: runtime.recommend(b["history"], b["k"], b["exclude_history"]), bodies, 1
    )

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (scratch / "serve.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("bentoml")),
            "serve",
            "mtrec.serving.service:MtrecService",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--arg",
            f"bento_model={tag}",
        ],
        cwd=ROOT / "src",
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    results: dict = {}
    try:
        wait_for_http(f"{url}/readyz", server, Path(log.name), seconds=180)
        limits = httpx.Limits(max_connections=max(args.concurrency))
        with httpx.Client(base_url=url, timeout=60, limits=limits) as client:

            def call(body: dict) -> None:
                answer = client.post("/recommend", json=body)
                answer.raise_for_status()

            for body in bodies[:5]:
                call(body)
            for level in args.concurrency:
                results[str(level)] = run_clients(call, bodies, level)
    finally:
        stop_process(server)
        log.close()

    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "cuda": torch.cuda.is_available(),
        },
        "model": {"dir": str(model_dir), "kind": runtime.description.get("kind")},
        "n_items": runtime.n_items,
        "history": args.history,
        "k": args.k,
        "with_reward_model": runtime.reward_network is not None,
        "in_process": in_process,
        "http": results,
        "http_over_in_process_p50": {
            level: r["p50_ms"] / in_process["p50_ms"] for level, r in results.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
