"""Simulator benchmark: log generation speed and statistics, and the online
harness on simple real policies (random, popularity, a quality oracle, a
topic-aware toy policy), with their responsiveness. Optionally the RL
recommender (r_env vs r_env + kappa * r_true, over seeds).

    python benchmarks/bench_simulator.py --out reports/bench_simulator.json
    # a log of millions of events:
    python benchmarks/bench_simulator.py --scale-users 20000 --scale-items 2000
    python benchmarks/bench_simulator.py --rl-seeds 0 1 2

Default parameters everywhere (SimulatorConfig(), OnlineConfig()) except the
cohort size (--cohort, default 1000 = every simulated user).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from mtrec.config import OnlineConfig, ReinforceConfig, SimulatorConfig
from mtrec.simulator.logging_policy import generate_log, log_statistics
from mtrec.simulator.online import evaluate_policies
from mtrec.simulator.policies import (
    ItemIndexMap,
    PopularityPolicy,
    QualityOracle,
    RandomPolicy,
    TopicAffinityPolicy,
)
from mtrec.simulator.responsiveness import cohort_responsiveness
from mtrec.simulator.rl import (
    QNetworkMentalReward,
    click_batch,
    rl_experiment,
    true_mental_reward,
)


def timed_log(config: SimulatorConfig) -> tuple[dict, float]:
    start = time.perf_counter()
    log = generate_log(config)
    seconds = time.perf_counter() - start
    return log, seconds


def learned_mental_reward(reward_dir: Path, processed_dir: Path, world) -> QNetworkMentalReward:
    """The reward engineer's Q-network, its items mapped through the processed
    items table it was trained on (that data must come from this world)."""
    import pandas as pd

    from mtrec.reward.qnetwork import load_qnetwork

    network = load_qnetwork(reward_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    items = pd.read_parquet(processed_dir / "items.parquet")
    reward = QNetworkMentalReward(network, ItemIndexMap.from_items_table(world, items))
    # z-score with the training clicks; the true reward of those clicks is only
    # used to print how well the learned reward tracks it.
    clicks = click_batch(pd.read_parquet(processed_dir / "train.parquet"), reward.max_history)
    raw = reward(clicks)
    reward.shift, reward.scale = float(raw.mean()), float(raw.std().clamp(min=1e-8))
    spearman = spearmanr(raw.numpy(), clicks.true_reward.numpy()).statistic
    print(
        f"learned reward on {len(raw)} train clicks: Spearman with the true reward {spearman:.3f}"
    )
    return reward


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cohort", type=int, default=1000)
    parser.add_argument(
        "--scale-users", type=int, default=0, help="also time a large log (0: skip)"
    )
    parser.add_argument("--scale-items", type=int, default=2000)
    parser.add_argument("--rl-seeds", type=int, nargs="*", default=[])
    parser.add_argument("--rl-iterations", type=int, default=ReinforceConfig().iterations)
    parser.add_argument(
        "--reward-dir",
        type=Path,
        default=None,
        help="a trained reward Q-network (train_reward output)",
    )
    parser.add_argument(
        "--processed-dir", type=Path, default=Path("data/processed"), help="its processed data"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    sim_config = SimulatorConfig()
    log, seconds = timed_log(sim_config)
    report: dict = {
        "default_log": {**log_statistics(log.frame), "seconds": round(seconds, 3)},
    }
    print(json.dumps(report["default_log"], indent=2))

    if args.scale_users:
        large = SimulatorConfig(n_users=args.scale_users, n_items=args.scale_items)
        large_log, seconds = timed_log(large)
        rows = len(large_log.frame)
        report["large_log"] = {
            "n_users": args.scale_users,
            "n_items": args.scale_items,
            "rows": rows,
            "seconds": round(seconds, 2),
            "rows_per_second": round(rows / seconds),
        }
        print(json.dumps(report["large_log"], indent=2))
        del large_log

    world = log.world
    online = OnlineConfig(n_users=args.cohort)
    identity = ItemIndexMap.identity(world.n_items)
    policies = {
        "random": RandomPolicy(world.n_items, seed=0),
        "popularity": PopularityPolicy.from_log(log.frame, identity, world),
        "quality_oracle": QualityOracle(world, identity),
        "topic_affinity": TopicAffinityPolicy(world, identity),
    }
    start = time.perf_counter()
    online_report = evaluate_policies(
        {name: (policy, identity) for name, policy in policies.items()},
        world,
        sim_config,
        online,
        baseline="random",
    )
    online_report["seconds"] = round(time.perf_counter() - start, 2)
    online_report["responsiveness"] = {
        name: cohort_responsiveness(policy, world, sim_config, online, identity, top_k=10)
        for name, policy in policies.items()
    }
    report["online"] = online_report
    for name, summary in online_report["policies"].items():
        line = ", ".join(
            f"{metric} {values['mean']:.3f} [{values['ci_low']:.3f}, {values['ci_high']:.3f}]"
            for metric, values in summary.items()
        )
        print(f"{name}: {line}")
        print(f"  responsiveness {online_report['responsiveness'][name]['responsiveness']:.3f}")

    if args.rl_seeds:
        rl_config = ReinforceConfig(iterations=args.rl_iterations)
        rl_online = OnlineConfig(n_users=min(args.cohort, 300))
        start = time.perf_counter()
        mental_rewards = {"true": true_mental_reward}
        if args.reward_dir is not None:
            mental_rewards["learned"] = learned_mental_reward(
                args.reward_dir, args.processed_dir, world
            )
        report["rl"] = rl_experiment(
            sim_config, rl_config, rl_online, seeds=args.rl_seeds, mental_rewards=mental_rewards
        )
        report["rl"]["seconds"] = round(time.perf_counter() - start, 1)
        for name in report["rl"]["variants"]:
            line = ", ".join(
                f"{m} {v['mean']:.3f} ± {v['std']:.3f}" for m, v in report["rl"][name].items()
            )
            print(f"RL {name}: {line}")

    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
