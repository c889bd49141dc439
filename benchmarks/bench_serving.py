"""Serving latency and throughput: `bentoml serve` under a Locust load vs the model in-process.

    python benchmarks/bench_serving.py --synthetic                    # the default job's shapes
    python benchmarks/bench_serving.py --model-dir models/gru4rec-none/seed_0/best \
        [--reward-dir models/reward/gru4rec/qnetwork]
    python benchmarks/bench_serving.py                                # the registry's champion
        [--users 1 8 32 128] [--duration 20] [--warmup 3] [--workers 1]

The model: `--synthetic` builds, with random weights, the recommender and the
mental reward model the default job trains (params.yaml: the first backbone of
`recommender.backbones`, its sizes, `reward.encoders`, `n_quantiles`,
`head_hidden`) over `--n-items` items (1,682: ML-100k); cost depends on the
shapes, not the weights. `--model-dir` serves a trained folder; neither: the
registry's champion (params.yaml `tracking`). The model is imported into a
temporary BENTOML_HOME and served from src/ (`bentoml serve
mtrec.serving.service:MtrecService`) on a free 127.0.0.1 port.

One run measures, side by side:
- in-process `RecommenderRuntime.recommend`, one request at a time (p50/p95/p99),
  and `RecommenderRuntime.answer` on batches of 32 (the service's batching
  without HTTP);
- HTTP at each `--users` level: Locust (benchmarks/locustfile_serving.py,
  headless, closed-loop users without think time, POST /recommend with histories
  drawn from the catalogue, fixed seeds; after a refusal a user backs off
  `--refusal-backoff` s, and the `--storm-users` levels retry at once), warm-up
  then a measured window:
  p50/p95/p99, requests/s, errors by status (429 = refused by traffic.max_concurrency),
  server RSS before and after, server and generator CPU seconds per request, the
  service's batch sizes, the load average;
- `http_over_in_process_p50`: HTTP p50 over in-process p50 (the figure of merit
  at 1 user).

The machine may be shared (the Locust generator always shares it with the
server): the JSON records the load average before and after every level, and
CPU seconds per request, which depend much less on other jobs than wall
times. JSON: benchmarks/results/serving.json. Bounded: at most 256 users,
120 s per level; loopback only.
"""

from __future__ import annotations

import argparse
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
LOCUSTFILE = Path(__file__).resolve().with_name("locustfile_serving.py")
SHARED_NOTE = (
    "2-core machine shared with other engineers' jobs while this ran, and the Locust "
    "generator runs on the same cores as the server: wall-clock figures (latency, "
    "requests/s) are inflated by the other load (see load_average beside each level); "
    "CPU seconds per request are the steadier figure."
)


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "requests": len(seconds),
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def make_requests(item_ids: list[str], count: int, history: int, k: int) -> list[dict]:
    rng = random.Random(0)
    return [
        {"history": rng.sample(item_ids, history), "k": k, "exclude_history": True}
        for _ in range(count)
    ]


def in_process_latency(runtime, bodies: list[dict]) -> dict:
    """One request at a time, as a single client would see it without HTTP."""
    for body in bodies[:10]:  # warm-up
        runtime.recommend(body["history"], body["k"], body["exclude_history"])
    times, cpu = [], time.process_time()
    for body in bodies:
        began = time.perf_counter()
        runtime.recommend(body["history"], body["k"], body["exclude_history"])
        times.append(time.perf_counter() - began)
    out = percentiles(times)
    out["requests_per_s"] = len(times) / sum(times)
    out["cpu_ms_per_request"] = (time.process_time() - cpu) / len(times) * 1000
    return out


def in_process_batched(runtime, bodies: list[dict], batch: int = 32) -> dict:
    """`answer` on batches: the compute cost per request once requests share passes."""
    queries = [runtime.check_recommend(b["history"], b["k"], b["exclude_history"]) for b in bodies]
    runtime.answer(queries[:batch])
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(queries), batch):
        runtime.answer(queries[start : start + batch])
    seconds = time.perf_counter() - began
    return {
        "batch_size": batch,
        "requests": len(queries),
        "ms_per_request": seconds / len(queries) * 1000,
        "ms_per_batch": seconds / -(-len(queries) // batch) * 1000,
        "cpu_ms_per_request": (time.process_time() - cpu) / len(queries) * 1000,
    }


def synthetic_model(folder: Path, n_items: int) -> tuple[Path, Path, dict]:
    """Random-weight recommender + reward model with the default job's shapes."""
    import torch

    from mtrec.config import load_params
    from mtrec.models import build_model, save_model
    from mtrec.reward.qnetwork import (
        RewardQNetwork,
        save_next_item_distribution,
        save_qnetwork,
    )

    params = load_params(ROOT / "params.yaml")
    recommender = params.recommender
    backbone = recommender.backbones[0]
    reward = params.reward.for_backbone(backbone)
    torch.manual_seed(0)
    model = build_model(recommender.backbone_config(backbone), n_items).eval()
    model_dir = save_model(
        model, folder / "recommender", item_ids=[str(i) for i in range(1, n_items + 1)]
    )
    network = RewardQNetwork(reward.backbone, n_items, reward.n_quantiles, reward.head_hidden)
    reward_dir = folder / "reward"
    save_qnetwork(network.eval(), reward_dir, extra={"reward": {"gamma": reward.gamma}})
    display = torch.rand(n_items + 1, dtype=torch.float64)
    display[0] = 0.0
    save_next_item_distribution(reward_dir, display)
    shapes = {
        "backbone": backbone,
        "recommender": recommender.backbone_config(backbone).model_dump(mode="json"),
        "reward_encoder": reward.backbone.model_dump(mode="json"),
        "n_quantiles": reward.n_quantiles,
        "weights": "random (seed 0): cost depends on the shapes only",
    }
    return model_dir, reward_dir, shapes


def champion_dirs(scratch: Path) -> tuple[Path, Path | None]:
    from mtrec.config import load_params
    from mtrec.lifecycle.package import download_champion
    from mtrec.lifecycle.tracking import configure_tracking

    tracking = load_params(ROOT / "params.yaml").tracking
    configure_tracking(tracking, ROOT)
    _, recommender, reward = download_champion(tracking, "champion", scratch)
    return recommender, reward


def server_processes(pid: int) -> list:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def server_usage(pid: int) -> dict[str, float]:
    """RSS (MiB) and CPU seconds of the server's process tree."""
    import psutil

    rss, cpu = 0.0, 0.0
    for process in server_processes(pid):
        try:
            rss += process.memory_info().rss / 2**20
            times = process.cpu_times()
            cpu += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return {"rss_mib": rss, "cpu_s": cpu}


def batching_stats(url: str, workers: int) -> dict[int, dict]:
    """The batch counters of each worker ({pid: counters}), asking /model_info until
    every worker answered (each request reaches one); {} from a service without them."""
    seen: dict[int, dict] = {}
    for _ in range(20 * workers):
        answer = httpx.post(f"{url}/model_info", json={}, timeout=60)
        if answer.status_code != 200:
            time.sleep(0.5)  # a 429 while the previous level drains
            continue
        stats = answer.json().get("batching")
        if not stats:
            return {}
        seen[stats.get("worker", 0)] = stats
        if len(seen) >= workers:
            break
    return seen


def load_level(
    url: str, bodies: Path, users: int, args, scratch: Path, pid: int, backoff: float
) -> dict:
    out = scratch / f"locust_{users}_{backoff}.json"
    before, load_before = server_usage(pid), os.getloadavg()
    workers = args.workers or 2  # the service's default
    batching_before = batching_stats(url, workers)
    command = [
        sys.executable,
        str(LOCUSTFILE),
        "--host",
        url,
        "--bodies",
        str(bodies),
        "--users",
        str(users),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
        "--out",
        str(out),
        "--server-pid",
        str(pid),
        "--refusal-backoff",
        str(backoff),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.warmup + args.duration + 120
    )
    if done.returncode != 0:
        raise RuntimeError(f"locust at {users} users failed:\n{done.stderr[-3000:]}")
    after = server_usage(pid)
    batching_after = batching_stats(url, workers)
    result = json.loads(out.read_text())
    every = result["all"]
    served = result["by_status"].get("200", {})
    both = set(batching_before) & set(batching_after)
    batches = sum(batching_after[w]["batches"] - batching_before[w]["batches"] for w in both)
    jobs = sum(batching_after[w]["jobs"] - batching_before[w]["jobs"] for w in both)
    return {
        "users": users,
        "refusal_backoff_s": backoff,
        "window_s": result["seconds"],
        "all": every,
        "served_200": served,
        "requests_by_status": {
            status: stats["requests"] for status, stats in result["by_status"].items()
        },
        "by_status": result["by_status"],
        "errors": every["failures"],
        "error_rate": every["failures"] / every["requests"] if every["requests"] else None,
        "server_rss_mib": {"before": before["rss_mib"], "after": after["rss_mib"]},
        "server_cpu_ms_per_request": result["server_cpu_s"] / max(every["requests"], 1) * 1000,
        "generator_cpu_ms_per_request": result["generator_cpu_s"]
        / max(every["requests"], 1)
        * 1000,
        "batching": {
            "workers_counted": len(both),
            "batches": batches,
            "requests": jobs,
            "mean_batch": jobs / batches if batches else None,
            "largest_batch_so_far": max(
                (stats["largest_batch"] for stats in batching_after.values()), default=None
            ),
        },
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--reward-dir", type=Path)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--n-items", type=int, default=1682)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--duration", type=float, default=20.0, help="measured s per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="s per level before it")
    parser.add_argument("--in-process-requests", type=int, default=300)
    parser.add_argument("--workers", type=int, default=None, help="MTREC_SERVE_WORKERS")
    parser.add_argument(
        "--refusal-backoff",
        type=float,
        default=1.0,
        help="s a user waits after a 429/503 without Retry-After (0: retry at once)",
    )
    parser.add_argument(
        "--baseline-source",
        type=Path,
        help="also serve this source tree (with src/, e.g. `git archive` of main) the same way",
    )
    parser.add_argument(
        "--storm-users",
        type=int,
        nargs="*",
        default=[128],
        help="extra levels whose users retry refusals at once (no back-off)",
    )
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serving.json")
    args = parser.parse_args()
    if (
        max([*args.users, *args.storm_users]) > 256
        or args.duration > 120
        or (args.in_process_requests > 5000)
    ):
        parser.error("bounded benchmark: at most 256 users, 120 s per level, 5000 requests")

    scratch = Path(tempfile.mkdtemp(prefix="mtrec-bench-serving-"))
    os.environ["BENTOML_HOME"] = str(scratch / "bentoml")  # before bentoml is imported
    import torch

    torch.set_num_threads(1)  # as the service's worker (MTREC_SERVE_TORCH_THREADS)
    from mtrec.lifecycle.package import import_bento_model
    from mtrec.serving.runtime import RecommenderRuntime

    shapes = None
    if args.synthetic:
        model_dir, reward_dir, shapes = synthetic_model(scratch / "synthetic", args.n_items)
    elif args.model_dir is None:
        model_dir, reward_dir = champion_dirs(scratch / "champion")
    else:
        model_dir, reward_dir = args.model_dir, args.reward_dir
    tag = import_bento_model("mtrec-bench", model_dir, reward_dir, {"candidate": "benchmark"})

    runtime = RecommenderRuntime.load(model_dir, reward_dir, device="cpu")
    bodies = make_requests(runtime.item_ids, 2000, args.history, args.k)
    bodies_file = scratch / "bodies.json"
    bodies_file.write_text(json.dumps(bodies))
    in_process = in_process_latency(runtime, bodies[: args.in_process_requests])
    batched = in_process_batched(runtime, bodies[: args.in_process_requests])

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if args.workers:
        env["MTREC_SERVE_WORKERS"] = str(args.workers)
    levels, info = serve_and_load(ROOT / "src", tag, bodies, bodies_file, env, args, scratch)
    baseline = None
    if args.baseline_source is not None:
        base_levels, _ = serve_and_load(
            args.baseline_source / "src", tag, bodies, bodies_file, env, args, scratch / "base"
        )
        baseline = {
            "source": str(args.baseline_source),
            "http": base_levels,
            "http_over_in_process_p50": over_in_process(base_levels, in_process),
        }

    report = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "note": SHARED_NOTE,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": 1,
            "load_average_at_start": list(os.getloadavg()),
            "shared_with_other_jobs": True,
        },
        "model": {
            "dir": str(model_dir),
            "kind": runtime.description.get("kind"),
            "synthetic": shapes,
            "n_items": runtime.n_items,
            "with_reward_model": runtime.reward_network is not None,
        },
        "request": {"history": args.history, "k": args.k, "route": "/recommend"},
        "server": {
            "workers": int(env.get("MTREC_SERVE_WORKERS", 2)),
            "limits": (info or {}).get("limits"),
            "settings_env": {k: v for k, v in env.items() if k.startswith("MTREC_SERVE_")},
            "uvicorn": {
                "httptools": _installed("httptools"),
                "uvloop": _installed("uvloop"),
            },
        },
        "load_generator": {
            "tool": "locust (FastHttpUser, closed loop, no think time)",
            "after_a_refusal": "a user waits Retry-After, else refusal_backoff_s, before its "
            "next request; levels named '<users>-no-backoff' retry at once (a storm)",
            "refusal_backoff_s": args.refusal_backoff,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
        },
        "in_process": in_process,
        "in_process_batched": batched,
        "http": levels,
        "http_over_in_process_p50": over_in_process(levels, in_process),
        "baseline": baseline,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def over_in_process(levels: dict[str, dict], in_process: dict) -> dict[str, float]:
    return {
        users: level["served_200"].get("p50_ms", float("nan")) / in_process["p50_ms"]
        for users, level in levels.items()
    }


def serve_and_load(
    src: Path, tag: str, bodies: list[dict], bodies_file: Path, env: dict, args, scratch: Path
) -> tuple[dict[str, dict], dict | None]:
    """`bentoml serve` the service of `src` (a source tree's src/), run every load
    level against it, stop it. Returns (levels, its /model_info)."""
    scratch.mkdir(parents=True, exist_ok=True)
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
        cwd=src,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    levels: dict[str, dict] = {}
    try:
        wait_for_http(f"{url}/readyz", server, Path(log.name), seconds=180)
        with httpx.Client(base_url=url, timeout=60) as client:
            for body in bodies[:20]:  # warm-up of the first request paths
                client.post("/recommend", json=body).raise_for_status()
            info = client.post("/model_info", json={}).json()
        runs = [(str(u), u, args.refusal_backoff) for u in args.users]
        runs += [(f"{u}-no-backoff", u, 0.0) for u in args.storm_users]
        for key, users, backoff in runs:
            levels[key] = load_level(url, bodies_file, users, args, scratch, server.pid, backoff)
            print(json.dumps({src.parent.name: {key: levels[key]["all"]}}), flush=True)
    finally:
        stop_process(server)
        log.close()
    return levels, info


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
