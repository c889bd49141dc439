"""One table of the reward-recovery runs (before = main af20300, after = this code).

    python benchmarks/reward_recovery_summary.py benchmarks/results/reward_recovery/*.json \
        --out benchmarks/results/reward_recovery/summary.json

Reads the JSON of `reward_recovery.py` (`summary` over seeds) and of
`reward_recovery_before.py` (per-seed `runs`), keeps the test split's headline
numbers (mean, std, per seed) and prints them as a markdown table. Proxies and
the ceiling do not depend on the reward model: the "before" files have none,
the "after" files of the same data carry them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HEADLINE = ("spearman_true_reward__", "auc_rating_4_vs_2__")
CALIBRATION = ("calibration__coverage_0.8", "calibration__width_0.8")


def test_scores(result: dict) -> dict[str, dict]:
    if "summary" in result:
        return result["summary"]["test"]["scores"]
    table: dict[str, dict] = {}
    keys = set().union(*(run["recovery"]["test"] for run in result["runs"]))
    for key in sorted(keys):
        values = [float(run["recovery"]["test"].get(key, np.nan)) for run in result["runs"]]
        finite = np.isfinite(values).any()
        table[key] = {
            "mean": float(np.nanmean(values)) if finite else None,
            "std": float(np.nanstd(values)) if finite else None,
            "values": [round(v, 4) for v in values],
        }
    return table


def headline(result: dict) -> dict:
    scores = test_scores(result)
    kept = {
        key: value
        for key, value in scores.items()
        if (key.startswith(HEADLINE) or key in CALIBRATION) and value["mean"] is not None
    }
    out = {"scores": kept}
    if "summary" in result:
        fractions = result["summary"]["test"]["fraction_of_ceiling"]
        out["fraction_of_ceiling"] = {
            key: round(value["mean"], 3)
            for key, value in fractions.items()
            if key.startswith(HEADLINE) and np.isfinite(value["mean"])
        }
        out["epochs"] = [(run["epochs_run"], run["best_epoch"]) for run in result["runs"]]
        out["criterion_tracking"] = [run["criterion_tracking"] for run in result["runs"]]
    else:
        out["epochs"] = [(run["epochs_run"], run["best_epoch"]) for run in result["runs"]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    table = {}
    for path in sorted(args.files):
        if path.resolve() == args.out.resolve():
            continue
        result = json.loads(path.read_text())
        table[path.stem] = {
            "code": result.get("code", "this branch"),
            "backbone": result["backbone"],
            "processed": result["processed"],
            "overrides": result.get("overrides", {}),
            "seeds": result["seeds"],
            **headline(result),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    for name, entry in table.items():
        print(f"\n### {name} ({entry['code']}, {entry['backbone']}, seeds {entry['seeds']})")
        print("| score | mean ± std | per seed | of ceiling |\n|---|---|---|---|")
        fractions = entry.get("fraction_of_ceiling", {})
        for key, value in entry["scores"].items():
            print(
                f"| {key} | {value['mean']:.3f} ± {value['std']:.3f} | {value['values']} | "
                f"{fractions.get(key, '')} |"
            )


if __name__ == "__main__":
    main()
