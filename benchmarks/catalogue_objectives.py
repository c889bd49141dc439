"""Full-catalogue CE against sampled and in-batch softmax: training time and
quality side by side, one invocation, same data, same seeds.

Trains one backbone (default SASRec, with params.yaml's recipe for it) once per
objective and seed on a processed split (`mtrec split`'s output), chooses
each run's checkpoint on validation NDCG@10 as training does, and reports
seconds per epoch, epochs to the best validation epoch and test metrics
(reported, never used to choose), mean ± std over seeds, plus each objective's
ratio to full CE.

    dvc repro split
    python benchmarks/catalogue_objectives.py --processed data/processed \
        --objective full --objective sampled:256 --objective in_batch \
        --seed 0 --seed 1 --seed 2 --threads 1 \
        --out benchmarks/results/catalogue_objectives_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import machine_info

from mtrec.config import EvaluateConfig, load_params
from mtrec.data.processed import load_processed
from mtrec.evaluation.evaluate import split_metrics
from mtrec.models import load_model
from mtrec.training.recommender import train_seed

TEST_METRICS = ("NDCG@10", "HR@10", "MRR@10", "AUC")


def parse_objective(text: str) -> dict:
    """ "full", "in_batch" or "sampled:K" -> train overrides."""
    kind, _, negatives = text.partition(":")
    overrides: dict = {"catalogue_loss": kind}
    if negatives:
        overrides["catalogue_negatives"] = int(negatives)
    return overrides


def mean_std(values: list[float]) -> dict[str, float]:
    values = [v for v in values if v is not None]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processed", type=Path, required=True, help="`mtrec split` output")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--backbone", default="sasrec")
    parser.add_argument("--objective", action="append", required=True)
    parser.add_argument("--seed", type=int, action="append", required=True)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    params = load_params(args.params)
    base = params.recommender
    data = load_processed(args.processed)
    evaluate = EvaluateConfig(device="cpu")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mtrec-catalogue-") as scratch:
        for objective in args.objective:
            changes = parse_objective(objective)
            if args.max_epochs is not None:
                changes["max_epochs"] = args.max_epochs
            overrides = {**base.train_overrides.get(args.backbone, {}), **changes}
            overrides |= {"num_threads": args.threads, "device": "cpu"}
            config = base.model_copy(
                update={"train_overrides": {**base.train_overrides, args.backbone: overrides}}
            )
            per_seed = {}
            for seed in args.seed:
                out = Path(scratch) / objective.replace(":", "-") / f"seed_{seed}"
                started = time.perf_counter()
                result = train_seed(config, args.backbone, "none", data, out, seed)
                wall = time.perf_counter() - started
                test = split_metrics(load_model(result.model_dir), data, "test", evaluate)
                per_seed[str(seed)] = {
                    "best_epoch": result.fit.best_epoch,
                    "epochs_run": result.fit.epochs_run,
                    "seconds_per_epoch": result.fit.seconds_per_epoch,
                    "train_seconds": result.fit.seconds_per_epoch * result.fit.epochs_run,
                    "wall_seconds": wall,
                    "valid_NDCG@10": result.fit.best_metrics.get("NDCG@10"),
                    "test": {m: test.get(m) for m in TEST_METRICS},
                }
                print(objective, seed, json.dumps(per_seed[str(seed)]), flush=True)
            runs = per_seed.values()
            results[objective] = {
                "train_overrides": overrides,
                "seeds": per_seed,
                "summary": {
                    key: mean_std([r[key] for r in runs])
                    for key in ("seconds_per_epoch", "best_epoch", "epochs_run", "train_seconds")
                }
                | {"valid_NDCG@10": mean_std([r["valid_NDCG@10"] for r in runs])}
                | {f"test_{m}": mean_std([r["test"][m] for r in runs]) for m in TEST_METRICS},
            }
    reference = results.get("full")
    if reference is not None:
        for entry in results.values():
            summary = entry["summary"]
            entry["ratio_to_full"] = {
                "seconds_per_epoch": summary["seconds_per_epoch"]["mean"]
                / reference["summary"]["seconds_per_epoch"]["mean"],
                "test_NDCG@10": summary["test_NDCG@10"]["mean"]
                / reference["summary"]["test_NDCG@10"]["mean"],
            }
    out = {
        "machine": machine_info(threads=args.threads, device="cpu"),
        "processed": str(args.processed),
        "n_items": data.n_items,
        "n_users": data.n_users,
        "backbone": args.backbone,
        "objectives": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
