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

from mtrec.lifecycle.gate import paired_seed_interval

METRICS = ("NDCG_p@10", "NDCG@10", "AUC", "NCIS")


def per_seed(candidate: dict, split: str, metric: str) -> dict[str, float]:
    seeds = candidate["seeds"] if split == "test" else candidate["valid"]["seeds"]
    return {seed: float(values[metric]) for seed, values in seeds.items() if metric in values}


def paired(guided: dict[str, float], base: dict[str, float], level: float) -> dict:
    """guided - base on the shared seeds; the interval is the gate's own paired
    t-interval over seeds (`paired_seed_interval`), also shown in metric units."""
    seeds = sorted(set(guided) & set(base), key=int)
    a = [guided[s] for s in seeds]
    b = [base[s] for s in seeds]
    base_mean = float(np.mean(b)) if b else math.nan
    mean = float(np.mean(np.subtract(a, b))) if seeds else math.nan
    relative = paired_seed_interval(a, b, "higher", level)

    def bound(key: str) -> float:
        value = relative.get(key)
        return math.nan if value is None else float(value)

    low, high = bound("lower"), bound("upper")
    return {
        "seeds": seeds,
        "guided": a,
        "base": b,
        "guided_mean": float(np.mean(a)) if a else math.nan,
        "base_mean": base_mean,
        "diff_mean": mean,
        # Divided by |base| as the interval is: the sign is the difference's.
        "relative_gain": mean / abs(base_mean) if base_mean else math.nan,
        "interval": {
            "level": level,
            "lower": low * abs(base_mean),
            "upper": high * abs(base_mean),
        },
        "relative_interval": {"lower": low, "upper": high},
        "p_value": bound("p_value"),
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
                metric: paired(guided, per_seed(base, split, metric), args.level)
                for metric in METRICS
                if (guided := per_seed(candidate, split, metric))
            }
            for split in ("valid", "test")
        }
    gate_path = args.reports / "gate.json"
    gate = json.loads(gate_path.read_text()) if gate_path.exists() else None
    result = {
        "reports": str(args.reports),
        "method": "paired t-interval over seeds (guided - base, same seeds; the gate's "
        "paired_seed_interval); valid chooses, test is reported",
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
