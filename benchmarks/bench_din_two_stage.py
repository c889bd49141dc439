"""Two-stage DIN: what a co-visitation candidate stage costs in quality and saves in time.

DIN scores an item with target attention over the history, so ranking a whole
catalogue runs that attention once per item and user. With `din.candidates: K`
a cheap co-visitation stage (mtrec.models.candidates) picks K items per user and
DIN re-ranks only those. This script trains DIN (guidance none) under the
pipeline's params, once per seed, and scores the *same* weights on validation
and test with every K (0 = every item): NDCG@10 / HR@10, the candidate stage's
recall (share of held-out positives it passes on), and the scoring's CPU and
wall seconds. Nothing is chosen here; the test split is reported beside
validation, and the paired difference to full scoring is over seeds.

    python benchmarks/bench_din_two_stage.py --seeds 0 1 2 --epochs 10 \\
        --candidates 0 50 100 200 500 --threads 1 \\
        --out benchmarks/results/din_two_stage_ml100k.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine_info

SPLITS = ("valid", "test")
METRICS = ("NDCG@10", "HR@10", "candidate_recall")


def two_stage_copy(model, candidates: int, train):
    """The same DIN weights with a candidate stage of size `candidates` fitted on `train`."""
    from mtrec.models import build_model

    config = model.config.model_copy(update={"candidates": candidates})
    copy = build_model(config, model.n_items)
    missing, unexpected = copy.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not name.startswith("candidate") for name in missing):
        raise RuntimeError(f"weights do not match: missing {missing}, unexpected {unexpected}")
    copy.fit_candidates(train)
    return copy.eval()


def candidate_stage_only(model, inputs, config) -> dict[str, Any]:
    """The candidate stage's own ranking (co-visitation, no DIN): what DIN must add."""
    import torch

    from mtrec.evaluation.evaluate import target_ranks_of
    from mtrec.evaluation.metrics import ranking_metrics

    class Stage(torch.nn.Module):
        def score_all(self, history: torch.Tensor) -> torch.Tensor:
            return model.candidate_scores(history)

    began_cpu = time.process_time()
    ranks = target_ranks_of(Stage(), inputs.targets, config.batch_size, torch.device("cpu"))
    metrics = ranking_metrics(ranks, ks=(10,))
    return {
        "NDCG@10": metrics["NDCG@10"],
        "HR@10": metrics["HR@10"],
        "cpu_seconds": time.process_time() - began_cpu,
    }


def score(model, inputs, config) -> dict[str, Any]:
    from mtrec.evaluation.evaluate import score_split_with_ranks

    began, began_cpu = time.perf_counter(), time.process_time()
    metrics, _ = score_split_with_ranks(model, inputs, config)
    return {
        **{name: metrics.get(name) for name in METRICS},
        "seconds": time.perf_counter() - began,
        "cpu_seconds": time.process_time() - began_cpu,
    }


def run(args) -> dict[str, Any]:
    import torch

    from mtrec.config import EvaluateConfig, load_params
    from mtrec.data.processed import load_processed
    from mtrec.evaluation.evaluate import prepare_split
    from mtrec.evaluation.stats import mean_std
    from mtrec.lifecycle.gate import paired_seed_interval
    from mtrec.models import load_model
    from mtrec.training.recommender import train_seed

    torch.set_num_threads(args.threads)
    params = load_params(args.params)
    data = load_processed(args.processed)
    base = params.recommender
    train = base.train_for("din").model_copy(
        update={"max_epochs": args.epochs, "num_threads": args.threads, "device": "cpu"}
    )
    config = base.model_copy(update={"backbones": ("din",), "guidances": ("none",), "train": train})
    evaluate = EvaluateConfig(ks=(10,), device="cpu", batch_size=params.evaluate.batch_size)
    inputs = {
        split: prepare_split(data, split, config.backbone_config("din").max_history)
        for split in SPLITS
    }
    per_seed: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="mtrec-din-") as scratch:
        for seed in args.seeds:
            began = time.perf_counter()
            result = train_seed(config, "din", "none", data, Path(scratch) / f"s{seed}", seed)
            trained = load_model(result.model_dir).eval()
            record: dict[str, Any] = {"train_seconds": time.perf_counter() - began}
            for k in args.candidates:
                model = trained if k == 0 else two_stage_copy(trained, k, data.train)
                record[str(k)] = {split: score(model, inputs[split], evaluate) for split in SPLITS}
                print(f"seed {seed} K {k}: {record[str(k)]}", file=sys.stderr, flush=True)
            stage = two_stage_copy(trained, max(args.candidates), data.train)
            record["candidate_stage_only"] = {
                split: candidate_stage_only(stage, inputs[split], evaluate) for split in SPLITS
            }
            per_seed[str(seed)] = record
    summary: dict[str, Any] = {}
    for k in args.candidates:
        row: dict[str, Any] = {}
        for split in SPLITS:
            values = {
                name: [per_seed[str(s)][str(k)][split][name] for s in args.seeds]
                for name in (*METRICS, "cpu_seconds", "seconds")
            }
            row[split] = {name: mean_std(v) for name, v in values.items() if None not in v}
            if k != 0 and 0 in args.candidates and len(args.seeds) > 1:
                full = [per_seed[str(s)]["0"][split]["NDCG@10"] for s in args.seeds]
                row[split]["NDCG@10_vs_full"] = paired_seed_interval(
                    values["NDCG@10"], full, "higher", 0.95
                )
                full_cpu = [per_seed[str(s)]["0"][split]["cpu_seconds"] for s in args.seeds]
                row[split]["cpu_speedup_vs_full"] = sum(full_cpu) / sum(values["cpu_seconds"])
        summary[str(k)] = row
    summary["candidate_stage_only"] = {
        split: {
            name: mean_std(
                [per_seed[str(s)]["candidate_stage_only"][split][name] for s in args.seeds]
            )
            for name in ("NDCG@10", "HR@10")
        }
        for split in SPLITS
    }
    return {
        "machine": machine_info(threads=args.threads, device="cpu"),
        "command": " ".join(sys.argv),
        "data": {"processed": str(args.processed), "n_items": data.n_items},
        "din": config.backbone_config("din").model_dump(mode="json"),
        "train": {"max_epochs": args.epochs, "monitor": train.monitor},
        "summary": summary,
        "per_seed": per_seed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--processed", type=Path, default=Path("data/processed"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="max epochs (early stop applies)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[0, 50, 100, 200, 500])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
