"""Two guided families of two `headroom.py --validation-users` runs, paired over seeds.

Each run chose its family's variant (its beta) on the validation cohort; this
compares the two chosen variants on the test cohort, seed by seed: the paired
t-interval over seeds of A - B for each online metric. It reports how far
apart the two runs' base (`<backbone>-none`) per-seed test-cohort values are:
about 0 when both trained the same base models on the same cohort, so the
pairing is real (retraining can move a seed's base slightly: CPU kernels are
not bit-reproducible across thread counts).

    python benchmarks/headroom_compare.py \
        --a benchmarks/results/headroom_valcohort_sim_learned_leave_aware_gru4rec.json \
        --b benchmarks/results/headroom_valcohort_sim_continuation_gru4rec_betas_0.03_to_30.json \
        --family gru4rec-mtrec \
        --out benchmarks/results/headroom_compare_gru4rec_leave_aware_vs_continuation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from guided_vs_base import paired

METRICS = ("viewing_time", "session_length", "ctr", "reward_per_shown", "negative_click_share")


def chosen(run: dict, family: str) -> str:
    selection = run["validation_cohort"]["selection"]
    if family not in selection:
        raise SystemExit(f"no family {family!r} in the run (families: {sorted(selection)})")
    return selection[family]["chosen"]


def compare(a: dict, b: dict, family: str, base: str, level: float = 0.95) -> dict:
    name_a, name_b = chosen(a, family), chosen(b, family)
    seeds = sorted(set(a["per_seed"][name_a]) & set(b["per_seed"][name_b]), key=int)
    base_gap = max(
        abs(a["per_seed"][base][s][m] - b["per_seed"][base][s][m])
        / max(abs(b["per_seed"][base][s][m]), 1e-12)
        for s in seeds
        for m in METRICS
    )
    out = {
        "a": name_a,
        "b": name_b,
        "seeds": seeds,
        "base_max_relative_difference": float(base_gap),
        "metrics": {},
    }
    for metric in METRICS:
        # The gate's paired t-interval over seeds, as guided_vs_base reports it.
        result = paired(
            {s: a["per_seed"][name_a][s][metric] for s in seeds},
            {s: b["per_seed"][name_b][s][metric] for s in seeds},
            level,
        )
        out["metrics"][metric] = {
            "a_mean": result["guided_mean"],
            "b_mean": result["base_mean"],
            "diff_mean": result["diff_mean"],
            "interval": result["interval"],
            "p_value": result["p_value"],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=Path, required=True)
    parser.add_argument("--b", type=Path, required=True)
    parser.add_argument("--family", required=True, help="e.g. gru4rec-mtrec")
    parser.add_argument("--base", default=None, help="default: <backbone>-none")
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    base = args.base or f"{args.family.split('-', 1)[0]}-none"
    a, b = json.loads(args.a.read_text()), json.loads(args.b.read_text())
    result = {
        "benchmark": "headroom_compare",
        "a_run": str(args.a),
        "b_run": str(args.b),
        "family": args.family,
        "base": base,
        **compare(a, b, args.family, base, args.level),
    }
    print(f"bases differ by at most {100 * result['base_max_relative_difference']:.2f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for metric, entry in result["metrics"].items():
        i = entry["interval"]
        print(
            f"{metric:22s} A {entry['a_mean']:.3f} vs B {entry['b_mean']:.3f}: "
            f"{entry['diff_mean']:+.3f} [{i['lower']:+.3f}, {i['upper']:+.3f}]"
        )


if __name__ == "__main__":
    main()
