"""Train and score the comparison rows side by side (the baselines table).

`compare_guidances` trains one backbone with each guidance (the unguided
base, the baselines, or any registered guidance) for each seed, chooses the
epoch on validation only, scores the chosen model on the test split with
every offline metric of METHOD.md section 4, and writes
`<out_dir>/comparison.json` (per seed, mean and std) and a markdown table.

It reuses the training loop's epoch function, losses registry and the
evaluation glue; what it adds over `mtrec.training.recommender.train_seed`
(until that step supports them) is (1) guidances that read a satisfaction
signal take it from the processed split itself (only the baselines allowed to
do so, see `TRAINS_ON_SATISFACTION`), and (2) losses with their own
parameters (PNFRec's negative encoder) get them optimised.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtrec.config import EvaluateConfig, RecommenderConfig
from mtrec.data.processed import ProcessedData, load_processed
from mtrec.data.sequences import build_windows
from mtrec.evaluation.evaluate import prepare_split, resolve_device, score_split
from mtrec.evaluation.stats import aggregate_seeds
from mtrec.models import build_model, save_model
from mtrec.training.loop import seed_everything, train_one_epoch
from mtrec.training.losses import LossContext, TrainingClock, make_loss, required_columns

SATISFACTION_COLUMNS = ("rating", "watch_ratio", "true_reward", "satisfied")
TABLE_METRICS = ("AUC", "GAUC", "NDCG@10", "HR@10", "NDCG_p@10", "HR_n@10", "dNDCG@10", "NCIS_lift")


def trains_on_satisfaction(guidance: str) -> bool:
    from mtrec.baselines.guidance import TRAINS_ON_SATISFACTION

    return TRAINS_ON_SATISFACTION.get(guidance, False)


def _trainable(model: nn.Module, loss: object) -> list[nn.Parameter]:
    params = list(model.parameters())
    if isinstance(loss, nn.Module):
        seen = {id(p) for p in params}
        params += [p for p in loss.parameters() if id(p) not in seen]
    return params


def _better(value: float, best: float, monitor: str) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value < best if monitor == "loss" else value > best


def train_and_score(
    config: RecommenderConfig,
    evaluate: EvaluateConfig,
    backbone: str,
    guidance: str,
    data: ProcessedData,
    out_dir: Path,
    seed: int,
) -> dict:
    """One seed of `<backbone>-<guidance>`: train with early stopping on the
    validation monitor, save the chosen model, score it on test."""
    train_config = config.train
    if train_config.num_threads is not None:
        torch.set_num_threads(train_config.num_threads)
    device = resolve_device(train_config.device)
    model_config = config.backbone_config(backbone)
    seed_everything(seed)
    model = build_model(model_config, data.n_items).to(device)
    untrained = copy.deepcopy(model)
    clock = TrainingClock()
    context = LossContext(
        model=model, catalogue_ce_weight=train_config.catalogue_ce_weight, clock=clock
    )
    loss = make_loss(guidance, config.guidance_options.get(guidance, {}), context)
    columns = required_columns(loss)
    forbidden = [c for c in columns if c in SATISFACTION_COLUMNS]
    if forbidden and not trains_on_satisfaction(guidance):
        raise ValueError(f"guidance {guidance!r} may not train on satisfaction columns {forbidden}")
    if isinstance(loss, nn.Module):
        loss.to(device)
    windows = build_windows(data.train, model_config.max_history, extra_columns=columns)
    optimizer = torch.optim.Adam(
        _trainable(model, loss),
        lr=train_config.learning_rate,
        weight_decay=train_config.weight_decay,
    )
    clock.steps_per_epoch = max(1, math.ceil(len(windows) / train_config.batch_size))
    valid_inputs = prepare_split(data, "valid", model_config.max_history)
    valid_config = EvaluateConfig(
        batch_size=train_config.eval_batch_size, device=train_config.device
    )

    history: list[dict] = []
    best_value, best_epoch, best_state, bad_epochs = float("nan"), 0, None, 0
    for epoch in range(train_config.max_epochs):
        clock.epoch = epoch
        started = time.perf_counter()
        train_loss = train_one_epoch(
            model, loss, optimizer, windows, train_config, seed, clock, device
        )
        seconds = time.perf_counter() - started
        metrics = score_split(model, valid_inputs, valid_config)
        history.append(
            {"epoch": epoch + 1, "train_loss": train_loss, "train_seconds": seconds}
            | {f"valid_{k}": v for k, v in metrics.items()}
        )
        value = metrics[train_config.monitor]
        if _better(value, best_value, train_config.monitor):
            best_value, best_epoch, bad_epochs = value, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            if bad_epochs >= train_config.patience:
                break
    if best_state is None:
        raise RuntimeError(f"no epoch produced a finite {train_config.monitor!r}")
    model.load_state_dict(best_state)
    item_ids = data.items.sort_values("item_idx")["item_id"].astype(str).tolist()
    model_dir = save_model(
        model,
        out_dir / f"{backbone}-{guidance}" / f"seed_{seed}",
        item_ids=item_ids,
        metadata={
            "guidance": guidance,
            "seed": seed,
            "epoch": best_epoch,
            "trains_on_satisfaction": trains_on_satisfaction(guidance),
        },
    )
    test_inputs = prepare_split(data, "test", model_config.max_history)
    test = score_split(model, test_inputs, evaluate, untrained=untrained)
    return {
        "model_dir": str(model_dir),
        "best_epoch": best_epoch,
        "seconds_per_epoch": float(np.mean([r["train_seconds"] for r in history])),
        "history": history,
        "test": test,
    }


def _finite(value: float) -> float | None:
    return None if value is None or value != value else float(value)


def markdown_table(report: dict, metrics: Sequence[str] = TABLE_METRICS) -> str:
    """One row per candidate: mean ± std of each metric over seeds (the mean
    alone for a single seed)."""
    header = ["candidate", "trains on satisfaction", "seeds", *metrics, "s/epoch"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in report["candidates"].items():
        cells = [name, "yes" if entry["trains_on_satisfaction"] else "no", str(entry["n_seeds"])]
        for metric in metrics:
            mean, std = entry["mean"].get(metric), entry["std"].get(metric)
            if mean is None:
                cells.append("n/a")
            elif entry["n_seeds"] > 1 and std is not None:
                cells.append(f"{mean:.4f} ± {std:.4f}")
            else:  # one seed: no spread to report
                cells.append(f"{mean:.4f}")
        cells.append(f"{entry['seconds_per_epoch']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _candidate_entry(guidance: str, per_seed: dict[int, dict]) -> dict:
    stats = aggregate_seeds([run["test"] for run in per_seed.values()])
    return {
        "guidance": guidance,
        "trains_on_satisfaction": trains_on_satisfaction(guidance),
        "n_seeds": len(per_seed),
        "seeds": {
            str(seed): {
                "best_epoch": run["best_epoch"],
                "model_dir": run["model_dir"],
                "seconds_per_epoch": run["seconds_per_epoch"],
                "test": {k: _finite(v) for k, v in run["test"].items()},
                # Per-epoch train loss and validation metrics (the curve behind best_epoch).
                "history": [{k: _finite(v) for k, v in row.items()} for row in run["history"]],
            }
            for seed, run in per_seed.items()
        },
        "mean": {k: _finite(v["mean"]) for k, v in stats.items()},
        "std": {k: _finite(v["std"]) for k, v in stats.items()},
        "seconds_per_epoch": float(
            np.mean([run["seconds_per_epoch"] for run in per_seed.values()])
        ),
    }


def compare_guidances(
    config: RecommenderConfig,
    evaluate: EvaluateConfig,
    processed_dir: str | Path,
    out_dir: str | Path,
    backbone: str = "sasrec",
    guidances: Sequence[str] = ("none", "ntr", "adt-tce", "adt-rce", "pnfrec"),
    seeds: Sequence[int] | None = None,
) -> dict:
    """Train and score each guidance for each seed; write comparison.json/.md."""
    import mtrec.baselines.guidance  # noqa: F401  (registers the baselines)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_processed(processed_dir)
    seeds = list(config.seeds if seeds is None else seeds)
    report: dict = {
        "backbone": backbone,
        "seeds": seeds,
        "split": "test",
        "train": config.train.model_dump(mode="json"),
        "guidance_options": {g: config.guidance_options.get(g, {}) for g in guidances},
        "candidates": {},
    }
    runs: dict[str, dict[int, dict]] = {guidance: {} for guidance in guidances}
    # Seed-major, so an interrupted run still has every guidance for the first seeds.
    for seed in seeds:
        for guidance in guidances:
            runs[guidance][seed] = train_and_score(
                config, evaluate, backbone, guidance, data, out_dir, seed
            )
            report["candidates"] = {
                f"{backbone}-{name}": _candidate_entry(name, per_seed)
                for name, per_seed in runs.items()
                if per_seed
            }
            (out_dir / "comparison.json").write_text(json.dumps(report, indent=2) + "\n")
            (out_dir / "comparison.md").write_text(markdown_table(report))
    return report
