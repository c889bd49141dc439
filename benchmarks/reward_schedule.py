"""How fast the reward model reaches its validation optimum, per training schedule.

The reward model is chosen by its held-out action negative log-likelihood
(`reward.monitor: action_nll`, a behaviour-only criterion). This script trains
it with several (windows_per_batch, learning_rate) schedules on one processed
split and records, per epoch, the validation action NLL, the wall and CPU
seconds, and (evaluation only, never used to choose) the validation truth
columns the training records anyway. The summary names, per schedule, the best
validation NLL and the seconds to come within `--tolerance` of the best NLL any
schedule reached: the default schedule is the fastest one that gets there.

    python benchmarks/reward_data.py --out /tmp/rb/ml100k --source ml-100k
    python benchmarks/reward_schedule.py --processed /tmp/rb/ml100k/processed \
        --backbone gru4rec --schedule 16:0.001 --schedule 64:0.003 \
        --out benchmarks/results/reward_schedule_ml100k_gru4rec.json

(`data/processed` of a `dvc repro split` of the default job is the same ML-100k split.)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from common import machine_info

from mtrec.config import load_params
from mtrec.data.processed import load_processed
from mtrec.device import resolve_device
from mtrec.reward.readout import validation_truth_report
from mtrec.reward.train import fit_qnetwork, prepare_logs


def parse_schedule(text: str) -> tuple[int, float]:
    windows, rate = text.split(":")
    return int(windows), float(rate)


def seconds_to_reach(history: list[dict], target: float) -> float | None:
    """Training seconds until the first epoch whose valid action NLL <= target."""
    elapsed = 0.0
    for record in history:
        elapsed += record["seconds"]
        if record["valid_action_nll"] <= target:
            return elapsed
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processed", type=Path, default=Path("data/processed"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--backbone", default="gru4rec")
    parser.add_argument(
        "--schedule",
        action="append",
        type=parse_schedule,
        help="windows_per_batch:learning_rate (repeatable)",
    )
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = load_params(args.params).reward.for_backbone(args.backbone)
    processed = load_processed(args.processed)
    device = resolve_device(base.device, "reward.device")
    logs = prepare_logs(
        processed.train, processed.valid, base.backbone.max_history, base.session_gap
    )
    runs = []
    for windows, rate in args.schedule or [(base.windows_per_batch, base.learning_rate)]:
        config = base.model_copy(
            update={
                "windows_per_batch": windows,
                "learning_rate": rate,
                "max_epochs": args.max_epochs,
                "patience": args.patience,
                "seed": args.seed,
            }
        )
        report = validation_truth_report(processed, config, device)
        began = time.perf_counter()
        _, history = fit_qnetwork(
            config, logs, processed.n_items, device, progress=False, epoch_report=report
        )
        best = min(history, key=lambda r: (r["valid_action_nll"], r["epoch"]))
        runs.append(
            {
                "windows_per_batch": windows,
                "learning_rate": rate,
                "rows_per_batch": windows * config.window,
                "train_seconds": time.perf_counter() - began,
                "epochs_run": len(history),
                "best_epoch": best["epoch"],
                "best_valid_action_nll": best["valid_action_nll"],
                "history": history,
            }
        )
        print(
            f"{windows}:{rate}: best valid action NLL {best['valid_action_nll']:.4f} at epoch "
            f"{best['epoch']} of {len(history)}, {runs[-1]['train_seconds']:.0f} s",
            flush=True,
        )
    best_overall = min(run["best_valid_action_nll"] for run in runs)
    target = best_overall + args.tolerance
    for run in runs:
        run["seconds_to_within_tolerance"] = seconds_to_reach(run["history"], target)
    reached = [r for r in runs if r["seconds_to_within_tolerance"] is not None]
    fastest = min(reached, key=lambda r: r["seconds_to_within_tolerance"])
    result = {
        "processed": str(args.processed),
        "backbone": args.backbone,
        "seed": args.seed,
        "max_epochs": args.max_epochs,
        "patience": args.patience,
        "selection": "valid_action_nll (behaviour only); truth_valid_* columns are "
        "evaluation only and never used to choose",
        "tolerance": args.tolerance,
        "best_valid_action_nll": best_overall,
        "fastest_within_tolerance": {
            "windows_per_batch": fastest["windows_per_batch"],
            "learning_rate": fastest["learning_rate"],
            "seconds": fastest["seconds_to_within_tolerance"],
        },
        "machine": machine_info(args.threads, str(device)),
        "mtrec_num_threads": os.environ.get("MTREC_NUM_THREADS"),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["fastest_within_tolerance"]))


if __name__ == "__main__":
    main()
