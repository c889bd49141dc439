"""Reward recovery of the mental reward model: how well each read-out of the
learned reward separates satisfying from unsatisfying clicks (evaluation only),
beside item popularity, for several objectives / TD targets and seeds.

    # ML-100k (the processed splits of the pipeline): AUC rating >= 4 vs <= 2
    python benchmarks/reward_recovery.py --processed data/processed --out /tmp/recovery_ml \
        --variant qr-iql:gradient --variant iq-learn:gradient --seeds 0 1 2 \
        --epochs 2 --max-history 10

    # the simulator (true reward known): Spearman and AUC on clicks
    python benchmarks/reward_recovery.py --processed /tmp/sim/processed --out /tmp/recovery_sim \
        --variant qr-iql:gradient --seeds 0 1 2 --epochs 6 --patience 2 --session-gap 3600 \
        --max-history 20 --splits train test

A simulator log for the second command: `data.source: synthetic` with
SimulatorConfig(seed=7, n_users=600, n_items=300, sessions_per_user=3,
max_session_length=20), split leave-one-out with n_negatives 0.

Writes one JSON line per run to OUT/results.jsonl and prints it; the read-out
is computed only for the splits evaluated (states still see the whole log).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mtrec.config import RewardConfig, SASRecConfig
from mtrec.data.processed import load_processed
from mtrec.reward.mdp import concat_splits
from mtrec.reward.qnetwork import load_qnetwork
from mtrec.reward.readout import compute_rewards, display_distribution, recovery_report
from mtrec.reward.train import behaviour_only, train_reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processed", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, help="objective:target")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--max-history", type=int, default=10)
    parser.add_argument("--session-gap", type=int, default=None)
    parser.add_argument("--splits", nargs="+", default=["valid", "test"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    processed = load_processed(args.processed)
    frames = {name: processed.split(name) for name in ("train", "valid", "test")}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    truth = concat_splits(frames)
    truth = truth[truth["split"].isin(args.splits).to_numpy()].reset_index(drop=True)
    signals = [c for c in ("satisfied", "rating", "true_reward") if c in truth.columns]
    display = display_distribution(processed.train, processed.n_items)
    popularity = np.zeros(processed.n_items + 1)
    popularity[processed.items["item_idx"].to_numpy()] = processed.items["train_positives"]
    backbone = SASRecConfig(
        max_history=args.max_history, dim=32, n_layers=1, n_heads=1, ffn_dim=64, dropout=0.1
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for variant in args.variant:
        objective, target = variant.split(":")
        for seed in args.seeds:
            run = args.out / f"{objective}_{target}_{seed}"
            config = RewardConfig(
                backbone=backbone,
                objective=objective,
                n_quantiles=1 if objective == "iq-learn" else 10,
                target=target,
                max_epochs=args.epochs,
                patience=args.patience,
                seed=seed,
                session_gap=args.session_gap,
                device="cpu",
            )
            wall, cpu = time.time(), time.process_time()
            train_reward(config, args.processed, run / "model", progress=False)
            wall, cpu = time.time() - wall, time.process_time() - cpu
            network = load_qnetwork(run / "model")
            rewards = compute_rewards(
                network,
                log,
                config,
                display,
                torch.device("cpu"),
                progress=False,
                splits=tuple(args.splits),
            )
            recovery = recovery_report(rewards, truth[signals], popularity)
            history = json.loads((run / "model" / "train_summary.json").read_text())["history"]
            row = {
                "variant": variant,
                "seed": seed,
                "epochs": len(history),
                "train_wall_s": round(wall),
                "train_cpu_s": round(cpu),
                "valid_action_nll": [round(h["valid_action_nll"], 4) for h in history],
            }
            for split in args.splits:
                for key, value in recovery[split].items():
                    row[f"{split}:{key}"] = round(float(value), 4)
            print(json.dumps(row), flush=True)
            with open(args.out / "results.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
