"""Epochs to the best validation NDCG@10, training time and test quality of
trained candidates, per seed and mean ± std, as one JSON to keep beside the
speed comparison (`bench_training.py` measures seconds per epoch side by side
with RecBole; training RecBole to convergence here takes hours, so its quality
reference is BENCHMARKS.md's figure on the same split).

Reads what `mtrec train-recommender` and `mtrec evaluate` wrote; trains nothing.

    python benchmarks/quality_to_convergence.py --metrics reports/metrics.json \
        --candidate sasrec-none --out benchmarks/results/quality_sasrec.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine_info

TEST_METRICS = ("NDCG@10", "HR@10", "MRR@10", "AUC", "NDCG_p@10", "HR_n@10")


def candidate_summary(entry: dict, models_dir: Path) -> dict:
    train = json.loads((models_dir / "train_summary.json").read_text())
    # Timings are kept apart from the hashed outputs (timing.json, seed_*/timing.csv).
    timing = json.loads((models_dir / "timing.json").read_text())["seeds"]
    per_seed = {}
    for seed, run in train["seeds"].items():
        history = pd.read_csv(Path(run["metrics_csv"]).with_name("timing.csv"))
        per_seed[seed] = {
            "best_epoch": run["best_epoch"],
            "epochs_run": run["epochs_run"],
            "train_seconds": float(history["train_seconds"].sum()),
            "train_cpu_seconds": float(history["train_cpu_seconds"].sum()),
            "seconds_per_epoch": timing[seed]["seconds_per_epoch"],
            "valid_ndcg_at_10": run["valid"].get("NDCG@10"),
            "test": {m: entry["seeds"][seed].get(m) for m in TEST_METRICS},
        }

    def mean_std(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}

    keys = ("best_epoch", "epochs_run", "train_seconds", "train_cpu_seconds", "seconds_per_epoch")
    return {
        "seeds": per_seed,
        "summary": {k: mean_std([s[k] for s in per_seed.values()]) for k in keys}
        | {f"test_{m}": mean_std([s["test"][m] for s in per_seed.values()]) for m in TEST_METRICS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, required=True, help="reports/metrics.json")
    parser.add_argument("--candidate", action="append", required=True)
    parser.add_argument("--params", default=None, help="the params file the runs used (recorded)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    report = json.loads(args.metrics.read_text())["candidates"]
    out = {"machine": machine_info(threads=1, device="cpu"), "params": args.params}
    for name in args.candidate:
        entry = report[name]
        models_dir = Path(next(iter(entry["model_dirs"].values()))).parent.parent
        out[name] = candidate_summary(entry, models_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    for name in args.candidate:
        s = out[name]["summary"]
        print(
            f"{name}: best epoch {s['best_epoch']['mean']:.1f}, "
            f"{s['train_seconds']['mean']:.0f} s, "
            f"test NDCG@10 {s['test_NDCG@10']['mean']:.4f} ± {s['test_NDCG@10']['std']:.4f}"
        )


if __name__ == "__main__":
    main()
