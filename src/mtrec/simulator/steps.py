"""Pipeline step for the simulator: online A/B of trained recommenders.

`online_evaluation` rebuilds the world and the logged data from the
simulator config (both are functions of it), evaluates the baseline policies
(random, popularity from the log, and the oracles: item quality, each
user's true click probability, each user's true expected reward) and every trained
model directory given, on the same cohort, and writes one JSON report with
each policy's summary, the paired comparisons against `baseline` and each
policy's responsiveness.
"""

from __future__ import annotations

import json
from pathlib import Path

from mtrec.config import OnlineConfig, SimulatorConfig
from mtrec.simulator.logging_policy import generate_log
from mtrec.simulator.online import evaluate_policies
from mtrec.simulator.policies import (
    CTROracle,
    ItemIndexMap,
    ModelPolicy,
    Policy,
    PopularityPolicy,
    QualityOracle,
    RandomPolicy,
    SatisfactionOracle,
    UserStateOracle,
)
from mtrec.simulator.responsiveness import cohort_responsiveness


def online_evaluation(
    sim_config: SimulatorConfig,
    config: OnlineConfig,
    model_dirs: dict[str, Path],
    out_path: Path,
    baseline: str = "popularity",
    responsiveness_top_k: int = 10,
) -> dict:
    log = generate_log(sim_config)
    world = log.world
    identity = ItemIndexMap.identity(world.n_items)
    policies: dict[str, tuple[Policy | UserStateOracle, ItemIndexMap]] = {
        "random": (RandomPolicy(world.n_items, seed=config.seed), identity),
        "popularity": (PopularityPolicy.from_log(log.frame, identity, world), identity),
        "quality_oracle": (QualityOracle(world, identity), identity),
        "ctr_oracle": (CTROracle(world, sim_config), identity),
        "satisfaction_oracle": (SatisfactionOracle(world, sim_config), identity),
    }
    for name, path in model_dirs.items():
        if name in policies:
            raise ValueError(f"model name {name!r} clashes with a baseline policy")
        policies[name] = ModelPolicy.from_path(path, world)
    report = evaluate_policies(policies, world, sim_config, config, baseline)
    report["responsiveness"] = {
        name: cohort_responsiveness(
            policy, world, sim_config, config, item_map, responsiveness_top_k
        )
        for name, (policy, item_map) in policies.items()
        # The state oracles do not rank from a history, which responsiveness probes.
        if not isinstance(policy, UserStateOracle)
    }
    report["model_dirs"] = {name: str(path) for name, path in model_dirs.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
