"""The pipeline's cost curve on simulated logs of growing size: wall time and
peak resident memory of each stage, each stage a separate `mtrec` process on
params derived from params.yaml (same code path as `dvc repro`).

Sizes are simulated worlds (`data.source: synthetic`) with users and items in
a fixed ratio, so only the log grows. Each stage's peak RSS is read from its
own process (getrusage of that process, not of this one). Also usable to make
a world for other benchmarks (`--stages ingest validate split`).

    python benchmarks/bench_scale.py --users 1000 --users 10000 --items-per-user 0.2 \
        --stages ingest validate split train_reward read_out_rewards train_recommender \
        evaluate --threads 1 --workdir /tmp/mtrec-scale \
        --out benchmarks/results/scale_curve.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from common import deep_update, machine_info

# Each stage's command, as dvc.yaml runs it, for one backbone and guidance.
COMMANDS = {
    "ingest": ["ingest"],
    "validate": ["validate"],
    "split": ["split"],
    "train_reward": ["train-reward", "--backbone", "{backbone}"],
    "read_out_rewards": ["read-out-rewards", "--backbone", "{backbone}"],
    "train_recommender": [
        "train-recommender",
        "--backbone",
        "{backbone}",
        "--guidance",
        "{guidance}",
    ],
    "evaluate": ["evaluate"],
}

# Runs the mtrec CLI in this child process and reports the child's own peak RSS.
RUNNER = (
    "import json, resource, sys\n"
    "from mtrec.cli import app\n"
    "code = 0\n"
    "try:\n"
    "    result = app(args=sys.argv[2:], standalone_mode=False)\n"
    "    code = result if isinstance(result, int) else 0\n"
    "except SystemExit as exit:\n"
    "    code = exit.code or 0\n"
    "except BaseException as error:\n"
    "    print(repr(error), file=sys.stderr); code = 1\n"
    "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
    "peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime\n"
    "record = {'peak_rss_mib': peak, 'cpu_seconds': cpu, 'code': code}\n"
    "open(sys.argv[1], 'w').write(json.dumps(record))\n"
    "sys.exit(code)\n"
)


def world_params(base: dict, folder: Path, users: int, items: int, args) -> dict:
    params = copy.deepcopy(base)
    simulator = (params.get("data") or {}).get("simulator") or {}
    simulator = {
        **simulator,
        "n_users": users,
        "n_items": items,
        "sessions_per_user": args.sessions,
        "max_session_length": args.session_length,
        "truth_path": str(folder / "data/raw/simulator_truth.npz"),
    }
    overrides = {
        "data": {"source": "synthetic", "path": None, "simulator": simulator},
        "validate": {"k_core": args.k_core},
        "paths": {
            "raw": str(folder / "data/raw/exposures.parquet"),
            "validated": str(folder / "data/validated/exposures.parquet"),
            "quarantine": str(folder / "data/validated/quarantine.parquet"),
            "processed": str(folder / "data/processed"),
            "reports": str(folder / "reports"),
            "models": str(folder / "models"),
        },
        "recommender": {
            "backbones": [args.backbone],
            "guidances": [args.guidance],
            "seeds": [0],
            "rewards_path": str(folder / "data/processed/rewards"),
            "train": {"max_epochs": args.epochs, "num_threads": args.threads},
            "train_overrides": {
                args.backbone: {
                    "catalogue_loss": args.catalogue_loss,
                    "catalogue_negatives": args.catalogue_negatives,
                }
            },
        },
        "reward": {"max_epochs": args.epochs},
    }
    if args.catalogue_ce_weight is not None:
        overrides["recommender"]["train_overrides"][args.backbone]["catalogue_ce_weight"] = (
            args.catalogue_ce_weight
        )
    return deep_update(params, overrides)


def run_stage(stage: str, params_file: Path, args, env: dict) -> dict:
    command = [
        part.format(backbone=args.backbone, guidance=args.guidance) for part in COMMANDS[stage]
    ]
    usage_file = params_file.parent / f"{stage}.usage.json"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, str(usage_file), *command, "--params", str(params_file)],
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    usage = json.loads(usage_file.read_text()) if usage_file.exists() else {}
    result = {
        "seconds": seconds,
        # the stage process's own CPU time (its threads and no other job's)
        "cpu_seconds": usage.get("cpu_seconds"),
        "peak_rss_mib": usage.get("peak_rss_mib"),
        "load_average_1_5_15_after": list(os.getloadavg()),
        "code": done.returncode,
    }
    if done.returncode != 0:
        result["error"] = (done.stderr or done.stdout)[-2000:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, action="append", required=True)
    parser.add_argument("--items-per-user", type=float, default=0.2)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--session-length", type=int, default=30)
    parser.add_argument(
        "--k-core", type=int, default=0, help="validate.k_core: drop users/items below it"
    )
    parser.add_argument("--stages", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--backbone", default="gru4rec")
    parser.add_argument("--guidance", default="none")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--catalogue-loss", default="full")
    parser.add_argument("--catalogue-negatives", type=int, default=256)
    parser.add_argument("--catalogue-ce-weight", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of every stage process, e.g. MALLOC_MMAP_THRESHOLD_=1048576 "
        "(glibc: large blocks from mmap, so a long training loop's freed memory returns "
        "to the system instead of fragmenting the heap)",
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    base = yaml.safe_load(args.params.read_text())
    # The mtrec CLI sets OMP/MKL threads from MTREC_NUM_THREADS (default 2) before
    # a stage starts: setting only OMP_NUM_THREADS gave every stage 2 threads.
    env = {**os.environ, "MTREC_NUM_THREADS": str(args.threads)}
    for setting in args.env:
        name, sep, value = setting.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env wants NAME=VALUE, got {setting!r}")
        env[name] = value
    sizes = []
    for users in args.users:
        items = max(10, int(round(users * args.items_per_user)))
        folder = (args.workdir / f"users_{users}").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        params_file = folder / "params.yaml"
        params_file.write_text(yaml.safe_dump(world_params(base, folder, users, items, args)))
        stages = {}
        for stage in args.stages:
            stages[stage] = run_stage(stage, params_file, args, env)
            print(users, stage, json.dumps(stages[stage])[:300], flush=True)
            if stages[stage]["code"] != 0:
                break
        raw = folder / "data/raw/exposures.json"
        meta = folder / "data/processed/meta.json"
        sizes.append(
            {
                "users": users,
                "items": items,
                "ingest_summary": json.loads(raw.read_text()) if raw.exists() else None,
                "processed_meta": json.loads(meta.read_text()) if meta.exists() else None,
                "stages": stages,
                "total_seconds": sum(s["seconds"] for s in stages.values()),
                "total_cpu_seconds": sum(s["cpu_seconds"] or 0 for s in stages.values()),
                "peak_rss_mib": max(s["peak_rss_mib"] or 0 for s in stages.values()),
            }
        )
    out = {
        "machine": machine_info(threads=args.threads, device="cpu"),
        "command": " ".join(sys.argv),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "sizes": sizes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
