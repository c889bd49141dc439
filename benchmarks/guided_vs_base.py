"""Guided vs unguided, paired over seeds, from what `mtrec evaluate` wrote.

For every guided candidate `<backbone>-<guidance>` of `reports/candidates/`,
against `<backbone>-none` on the same seeds: per metric, the per-seed values,
the mean difference, its relative size and a paired t-interval over seeds, on
validation (the split every choice is made on) and on test (reported only).
The gate's decision of the same run is copied beside it.

    dvc exp run -S 'recommender.seeds=[0,1,2,3,4]'     # the default job, 5 seeds
    python benchmarks/guided_vs_base.py --reports reports \
        --out benchmarks/results/guided_vs_base_ml100k_5seeds.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

from mtrec.evaluation.stats import paired_comparison

METRICS = ("NDCG_p@10", "NDCG@10", "AUC", "NCIS")


def per_seed(candidate: dict, split: str, metric: str) -> dict[str, float]:
    seeds = candidate["seeds"] if split == "test" else candidate["valid"]["seeds"]
    return {seed: float(values[metric]) for seed, values in seeds.items() if metric in values}


def paired(guided: dict[str, float], base: dict[str, float], level: float) -> dict:
    seeds = sorted(set(guided) & set(base), key=int)
    a = [guided[s] for s in seeds]
    b = [base[s] for s in seeds]
    comparison = paired_comparison(a, b)
    n, mean, std = comparison["n"], comparison["diff_mean"], comparison["diff_std"]
    base_mean = float(np.mean(b)) if b else math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)) if n >= 2 else math.nan
    return {
        "seeds": seeds,
        "guided": a,
        "base": b,
        "guided_mean": float(np.mean(a)) if a else math.nan,
        "base_mean": base_mean,
        "diff_mean": mean,
        "relative_gain": mean / base_mean if base_mean else math.nan,
        "interval": {"level": level, "lower": mean - half, "upper": mean + half},
        "relative_interval": {
            "lower": (mean - half) / base_mean if base_mean else math.nan,
            "upper": (mean + half) / base_mean if base_mean else math.nan,
        },
        "p_value": comparison["p_value"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    candidates = {
        path.stem: json.loads(path.read_text())
        for path in sorted((args.reports / "candidates").glob("*.json"))
        if not path.name.endswith(".valid_ranks.json")
    }
    comparisons = {}
    for name, candidate in candidates.items():
        base_name = f"{candidate['backbone']}-none"
        if candidate["guidance"] == "none" or base_name not in candidates:
            continue
        base = candidates[base_name]
        comparisons[f"{name} vs {base_name}"] = {
            split: {
                metric: paired(
                    per_seed(candidate, split, metric), per_seed(base, split, metric), args.level
                )
                for metric in METRICS
                if per_seed(candidate, split, metric)
            }
            for split in ("valid", "test")
        }
    gate_path = args.reports / "gate.json"
    gate = json.loads(gate_path.read_text()) if gate_path.exists() else None
    result = {
        "reports": str(args.reports),
        "method": "paired t-interval over seeds (guided - base, same seeds); valid chooses, "
        "test is reported",
        "comparisons": comparisons,
        "gate": None
        if gate is None
        else {k: gate.get(k) for k in ("action", "winner", "reason", "selection_split")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for label, splits in comparisons.items():
        for split, metrics in splits.items():
            row = metrics.get("NDCG_p@10")
            if row:
                low, high = row["relative_interval"]["lower"], row["relative_interval"]["upper"]
                print(
                    f"{label} {split} NDCG_p@10: {row['guided_mean']:.4f} vs "
                    f"{row['base_mean']:.4f} ({row['relative_gain']:+.2%}, "
                    f"{args.level:.0%} interval [{low:+.2%}, {high:+.2%}], n={len(row['seeds'])})"
                )


if __name__ == "__main__":
    main()
