"""What MTRec's reward model costs next to the recommender it guides.

Reads what training already recorded (no re-run): per backbone, the CPU
seconds of the reward models (`models/reward/<b>/{qnetwork,irl}/timing.json`,
per epoch) and of the unguided recommender of the same backbone
(`<candidates>/<b>-none/seed_*/timing.csv`, `train_cpu_seconds` per epoch),
and writes their ratio. CPU seconds, not wall: with one torch thread they are
the work done, much less sensitive to other jobs on a shared machine.

    python benchmarks/reward_cost.py --models models --backbone gru4rec --backbone sasrec \
        --out benchmarks/results/reward_cost.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from common import machine_info


def reward_cost(reward_dir: Path) -> dict:
    summary = json.loads((reward_dir / "timing.json").read_text())
    cpu = [epoch["cpu_seconds"] for epoch in summary["history"]]
    return {
        "epochs": len(cpu),
        "cpu_seconds": float(np.sum(cpu)),
        "cpu_seconds_per_epoch": float(np.mean(cpu)),
        "wall_seconds": summary["train_seconds"],
    }


def recommender_cost(candidate_dir: Path) -> dict:
    per_seed = {}
    for csv in sorted(candidate_dir.glob("seed_*/timing.csv")):
        history = pd.read_csv(csv)
        per_seed[csv.parent.name] = {
            "epochs": len(history),
            "cpu_seconds": float(history["train_cpu_seconds"].sum()),
            "cpu_seconds_per_epoch": float(history["train_cpu_seconds"].mean()),
        }
    if not per_seed:
        raise FileNotFoundError(f"no seed_*/timing.csv under {candidate_dir}")
    return {
        "seeds": per_seed,
        "cpu_seconds": float(np.mean([s["cpu_seconds"] for s in per_seed.values()])),
        "cpu_seconds_per_epoch": float(
            np.mean([s["cpu_seconds_per_epoch"] for s in per_seed.values()])
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--candidates", type=Path, default=None, help="default <models>/candidates")
    parser.add_argument("--backbone", action="append", required=True)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reward_cost.json"))
    args = parser.parse_args()
    candidates = args.candidates or args.models / "candidates"
    report = {"machine": machine_info(threads=1, device="cpu"), "backbones": {}}
    for backbone in args.backbone:
        rewards = {
            name: reward_cost(args.models / "reward" / backbone / name)
            for name in ("qnetwork", "irl")
            if (args.models / "reward" / backbone / name / "train_summary.json").exists()
        }
        base = recommender_cost(candidates / f"{backbone}-none")
        qnetwork = rewards["qnetwork"]
        report["backbones"][backbone] = {
            "reward_models": rewards,
            "recommender_none": base,
            # One reward model serves every guided candidate and seed of the backbone.
            "qr_iql_over_one_recommender_run": qnetwork["cpu_seconds"] / base["cpu_seconds"],
            "qr_iql_epoch_over_recommender_epoch": (
                qnetwork["cpu_seconds_per_epoch"] / base["cpu_seconds_per_epoch"]
            ),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                b: {k: v for k, v in r.items() if "over" in k}
                for b, r in report["backbones"].items()
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
