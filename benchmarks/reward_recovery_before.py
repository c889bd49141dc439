"""The "before" side of `reward_recovery.py`: main's reward model and read-out
as they were at commit af20300 (one shared next state, read-out over
train+valid+test, max_epochs 4 / patience 1 selected by the IQ-Learn loss,
CVaR over ceil(qN) quantiles), with the pipeline's reward encoders.

Run it against main's source tree, not this one (the imports are main's API):

    git archive af20300 src | tar -x -C /tmp/main_af20300
    PYTHONPATH=/tmp/main_af20300/src python benchmarks/reward_recovery_before.py \
        --processed /tmp/rb/sim/processed --backbone gru4rec --seeds 0 1 2 \
        --out benchmarks/results/reward_recovery_before_sim_gru4rec.json

Evaluation-only signals are read by main's `recovery_report`; the calibration's
affine map is fitted on train positives, as main's read-out does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mtrec.config import RewardConfig
from mtrec.data.processed import load_processed
from mtrec.reward.mdp import concat_splits
from mtrec.reward.qnetwork import load_qnetwork
from mtrec.reward.readout import compute_rewards, display_distribution, recovery_report
from mtrec.reward.train import behaviour_only, train_reward

# params.yaml `reward.encoders` on main (af20300).
ENCODERS = {
    "gru4rec": dict(max_history=20, dim=32, hidden_dim=64, n_layers=1, dropout=0.1),
    "sasrec": dict(max_history=20, dim=32, n_layers=1, n_heads=1, ffn_dim=64, dropout=0.1),
    "din": dict(max_history=20, dim=32, attention_hidden=36, mlp_hidden=[64, 32], dropout=0.1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processed", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/reward_recovery_before"))
    parser.add_argument("--backbone", default="gru4rec", choices=sorted(ENCODERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--session-gap", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    processed = load_processed(args.processed)
    frames = {name: processed.split(name) for name in ("train", "valid", "test")}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    truth = concat_splits(frames)
    signals = [c for c in ("satisfied", "rating", "true_reward") if c in truth.columns]
    display = display_distribution(processed.train, processed.n_items)
    popularity = np.zeros(processed.n_items + 1)
    popularity[processed.items["item_idx"].to_numpy()] = processed.items["train_positives"]
    base = RewardConfig(
        encoders={args.backbone: ENCODERS[args.backbone]},
        session_gap=args.session_gap,
        max_epochs=4,
        patience=1,
        device="cpu",
    )
    runs = []
    for seed in args.seeds:
        config = base.for_backbone(args.backbone).model_copy(update={"seed": seed})
        folder = args.work / f"{args.processed.parent.name}_{args.backbone}_{seed}"
        began = time.perf_counter()
        train_reward(config, args.processed, folder, progress=False)
        seconds = time.perf_counter() - began
        network = load_qnetwork(folder)
        rewards = compute_rewards(
            network, log, config, display, torch.device("cpu"), progress=False
        )
        recovery = recovery_report(rewards, truth[signals], popularity)
        history = json.loads((folder / "train_summary.json").read_text())["history"]
        run = {
            "seed": seed,
            "epochs_run": len(history),
            "best_epoch": min(history, key=lambda r: r["valid_loss"])["epoch"],
            "train_seconds": round(seconds, 1),
            "history": history,
            "recovery": {split: recovery[split] for split in ("valid", "test")},
        }
        runs.append(run)
        print(json.dumps({k: v for k, v in run.items() if k != "history"})[:2000], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "code": "main af20300",
                "processed": str(args.processed),
                "backbone": args.backbone,
                "encoder": ENCODERS[args.backbone],
                "seeds": args.seeds,
                "runs": runs,
            },
            indent=2,
            default=float,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
