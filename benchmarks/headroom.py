"""The simulator's headroom table: how far trained recommenders are from the
oracles, online, and how much of that gap MTRec guidance closes.

Every policy meets the same simulated cohort (params.yaml `online`: same
users, same warm-up, common random numbers), so differences are paired:

- reference policies: random, popularity (clicks in the log), and three
  oracles that read the hidden world: item quality, each user's true click
  probability now (`ctr_oracle`, a perfect CTR model) and each user's true
  expected reward now (`satisfaction_oracle`, a perfect reward model);
- every trained candidate `<backbone>-<guidance>` of a candidates folder, one
  online run per seed (the checkpoint early stopping chose on validation).

Per backbone, each guided candidate is compared with `<backbone>-none`: the
cohort mean of a metric per seed, paired over seeds (the gate's paired
t-interval), and the effect as a share of the headroom
(guided - base) / (satisfaction_oracle - base). The user-level bootstrap of
the harness (`compare`) is added for seed 0 as a secondary interval.

    # a simulated-world run of the pipeline, 5 seeds (in a clone, not main's workspace):
    dvc exp run -S data.source=synthetic -S validate.k_core=3 \
        -S 'recommender.seeds=[0,1,2,3,4]'
    python benchmarks/headroom.py --candidates models/candidates \
        --out benchmarks/results/headroom_sim_gru4rec_5seeds.json

With `--validation-users N` the world's users are split into two disjoint
cohorts: users 0 .. N-1 (with their own random numbers, seed online.seed + 1)
form a *validation cohort* and the rest the *test cohort*, which the whole
table reports. Candidates that differ only in a `-<variant>` suffix after the
guidance (`gru4rec-mtrec-beta0.3`, `gru4rec-mtrec-beta0.03`, as
`guidance_control.py` names them) are one family: its variant with the best
validation-cohort viewing time (mean over seeds) is chosen, and only the
chosen one's test-cohort comparison is the family's result (every variant's is
still listed, marked). The test cohort never chooses.

The candidates' data must come from the world params.yaml describes (the
script rebuilds it from `data.simulator`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from common import machine_info
from guided_vs_base import paired

from mtrec.config import load_params
from mtrec.evaluation.evaluate import find_candidates
from mtrec.simulator.logging_policy import generate_log
from mtrec.simulator.online import OnlineResult, compare, run_online
from mtrec.simulator.policies import (
    CTROracle,
    ItemIndexMap,
    ModelPolicy,
    PopularityPolicy,
    QualityOracle,
    RandomPolicy,
    SatisfactionOracle,
)

METRICS = ("viewing_time", "session_length", "ctr", "reward_per_shown", "negative_click_share")
HEADLINE = "viewing_time"


def cohort_means(result: OnlineResult) -> dict[str, float]:
    """The cohort mean of every metric (users weighted equally)."""
    per_user = result.per_user()
    return {metric: float(per_user[metric].mean()) for metric in METRICS}


def over_seeds(values: list[dict[str, float]]) -> dict[str, dict]:
    table = {}
    for metric in METRICS:
        column = [v[metric] for v in values]
        table[metric] = {
            "mean": float(np.mean(column)),
            "std": float(np.std(column, ddof=1)) if len(column) > 1 else 0.0,
            "values": [round(x, 4) for x in column],
        }
    return table


def seed_models(candidates: Path) -> dict[str, dict[str, Path]]:
    """{candidate name: {seed: chosen checkpoint folder}} of every trained candidate."""
    return {
        name: {seed: Path(entry["model_dir"]) for seed, entry in summary["seeds"].items()}
        for name, summary in find_candidates(candidates).items()
    }


def family_of(name: str) -> str:
    """`<backbone>-<guidance>` of a candidate name, without a variant suffix."""
    backbone, _, rest = name.partition("-")
    return f"{backbone}-{rest.split('-')[0]}" if rest else name


def choose_variants(validation: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict]:
    """Per family, the variant with the best mean validation-cohort viewing time."""
    families: dict[str, dict[str, float]] = {}
    for name, seeds in validation.items():
        mean = float(np.mean([v[HEADLINE] for v in seeds.values()]))
        families.setdefault(family_of(name), {})[name] = mean
    return {
        family: {"validation_viewing_time": variants, "chosen": max(variants, key=variants.get)}
        for family, variants in families.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--candidates", type=Path, default=Path("models/candidates"))
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument(
        "--validation-users",
        type=int,
        default=None,
        help="users 0..N-1 form a validation cohort that chooses among a family's "
        "variants; the rest form the test cohort the table reports",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    params = load_params(args.params)
    if params.data.source != "synthetic":
        raise SystemExit(f"headroom needs data.source: synthetic (got {params.data.source!r})")
    sim, online = params.data.simulator, params.online
    validation_online = None
    if args.validation_users is not None:
        if not 0 < args.validation_users < sim.n_users:
            raise SystemExit(f"--validation-users must be in 1..{sim.n_users - 1}")
        validation_online = online.model_copy(
            update={"first_user": 0, "n_users": args.validation_users, "seed": online.seed + 1}
        )
        online = online.model_copy(update={"first_user": args.validation_users, "n_users": None})
    started = time.perf_counter()
    log = generate_log(sim)
    world = log.world
    identity = ItemIndexMap.identity(world.n_items)
    references = {
        "random": RandomPolicy(world.n_items, seed=online.seed),
        "popularity": PopularityPolicy.from_log(log.frame, identity, world),
        "quality_oracle": QualityOracle(world, identity),
        "ctr_oracle": CTROracle(world, sim),
        "satisfaction_oracle": SatisfactionOracle(world, sim),
    }
    results: dict[str, OnlineResult] = {}
    for name, policy in references.items():
        results[name] = run_online(policy, world, sim, online, identity, name)
    table = {name: over_seeds([cohort_means(result)]) for name, result in results.items()}

    models = seed_models(args.candidates)
    if not models:
        raise SystemExit(f"no */train_summary.json under {args.candidates}")
    per_seed: dict[str, dict[str, dict[str, float]]] = {}
    validation_per_seed: dict[str, dict[str, dict[str, float]]] = {}
    seed0_results: dict[str, OnlineResult] = {}
    for name, seeds in models.items():
        per_seed[name] = {}
        validation_per_seed[name] = {}
        for seed, model_dir in sorted(seeds.items(), key=lambda kv: int(kv[0])):
            policy, item_map = ModelPolicy.from_path(model_dir, world)
            if validation_online is not None:
                checked = run_online(policy, world, sim, validation_online, item_map, name)
                validation_per_seed[name][seed] = cohort_means(checked)
            result = run_online(policy, world, sim, online, item_map, f"{name}/{seed}")
            per_seed[name][seed] = cohort_means(result)
            if seed == min(seeds, key=int):
                seed0_results[name] = result
        table[name] = over_seeds(list(per_seed[name].values()))

    oracle = table["satisfaction_oracle"][HEADLINE]["mean"]
    comparisons = {}
    selection = choose_variants(validation_per_seed) if validation_online is not None else {}
    chosen = {family["chosen"] for family in selection.values()}
    for name in models:
        backbone, _, guidance = name.partition("-")
        base = f"{backbone}-none"
        if guidance == "none" or base not in models:
            continue
        entry: dict = {"base": base}
        if selection:
            entry["chosen_on_validation_cohort"] = name in chosen
        for metric in METRICS:
            guided = {s: v[metric] for s, v in per_seed[name].items()}
            reference = {s: v[metric] for s, v in per_seed[base].items()}
            entry[metric] = paired(guided, reference, args.level)
        base_mean = entry[HEADLINE]["base_mean"]
        gap = oracle - base_mean
        entry["headroom"] = {
            "metric": HEADLINE,
            "satisfaction_oracle": oracle,
            "base": base_mean,
            "oracle_minus_base": gap,
            "effect_share_of_headroom": entry[HEADLINE]["diff_mean"] / gap if gap else math.nan,
        }
        entry["user_bootstrap_first_seed"] = compare(
            seed0_results[base], seed0_results[name], online
        )
        comparisons[name] = entry

    report = {
        "benchmark": "headroom",
        "command": "python benchmarks/headroom.py "
        + f"--candidates {args.candidates} --out {args.out}"
        + ("" if args.validation_users is None else f" --validation-users {args.validation_users}"),
        "world": sim.model_dump(),
        "online": online.model_dump(),
        "n_users": int(len(results["random"].per_user())),
        "validation_cohort": None
        if validation_online is None
        else {
            "online": validation_online.model_dump(),
            "per_seed": validation_per_seed,
            "selection": selection,
        },
        "policies": table,
        "per_seed": per_seed,
        "guided_vs_base": comparisons,
        "seconds": time.perf_counter() - started,
        "machine": machine_info(threads=1, device="cpu"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, row in table.items():
        print(
            f"{name:22s} viewing {row['viewing_time']['mean']:7.2f} ± "
            f"{row['viewing_time']['std']:.2f}  CTR {row['ctr']['mean']:.3f}  "
            f"reward/shown {row['reward_per_shown']['mean']:+.3f}"
        )
    for name, entry in comparisons.items():
        v = entry[HEADLINE]
        mark = "*" if entry.get("chosen_on_validation_cohort") else " "
        print(
            f"{mark}{name} - {entry['base']}: viewing {v['diff_mean']:+.3f} "
            f"({100 * v['relative_gain']:+.1f}%, {100 * args.level:.0f}% "
            f"[{100 * v['relative_interval']['lower']:+.1f}%, "
            f"{100 * v['relative_interval']['upper']:+.1f}%]); "
            f"{100 * entry['headroom']['effect_share_of_headroom']:.1f}% of the headroom"
        )


if __name__ == "__main__":
    main()
