"""Scoring trained recommenders: the glue between models, data and metrics.

`exposure_probabilities` and `target_ranks_of` run a model over a split;
`split_metrics` turns those into every offline metric of METHOD.md §4;
`evaluate_candidates` is the pipeline step: it scores each trained candidate
(every seed's chosen checkpoint) on the test split, reported for the record,
and on the validation split, the only evidence the gate chooses on; it writes
`reports/candidates/<name>.json`, `reports/candidates/<name>.valid_ranks.json`
and `reports/metrics.json`.

metrics.json format:
    {"split": "test", "selection_split": "valid",
     "candidates": {"<backbone>-<guidance>": {
         "backbone": str, "guidance": str,
         "seeds": {"<seed>": {metric: value}},           # test, for the record
         "mean": {metric: value}, "std": {metric: value},
         "valid": {"seeds": {...}, "mean": {...}, "std": {...},   # read by the gate
                   "per_user_file": path},  # {"user_idx", "satisfied", "ranks": {seed: [...]}}
         "model_dirs": {"<seed>": path}}}}
Metrics: AUC, GAUC (test exposures); NCIS_lift (NCIS minus the same seed's
untrained model), NCIS, NCIS_untrained; HR/NDCG/MRR@K (full ranking, the
user's earlier positives masked, pessimistic ties); HR_p/NDCG_p/HR_n/NDCG_n
and dNDCG@K (satisfaction split; evaluation only); n_users, n_exposures.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mtrec.config import EvaluateConfig
from mtrec.data.processed import ProcessedData, load_processed
from mtrec.data.sequences import RankingTargets, WindowBatch, build_ranking_targets, build_windows
from mtrec.device import resolve_device
from mtrec.evaluation.metrics import (
    auc,
    gauc,
    ncis,
    rank_from_counts,
    ranking_metrics,
    satisfaction_split,
)
from mtrec.evaluation.stats import aggregate_seeds
from mtrec.models import Recommender, load_model

SPLIT_CONTEXT = {"valid": ("train",), "test": ("train", "valid")}


def split_windows(data: ProcessedData, split: str, max_history: int) -> WindowBatch:
    """Windows over the exposures of `split`, earlier splits as context."""
    context = [data.split(name) for name in SPLIT_CONTEXT.get(split, ())]
    return build_windows(data.split(split), max_history, context=context)


@torch.no_grad()
def exposure_logits(
    model: Recommender, windows: WindowBatch, batch_size: int, device: torch.device
) -> np.ndarray:
    """CTR logit of every exposure, in the row order of the windows' target frame."""
    was_training = model.training
    model.eval()
    n_rows = int(windows.mask.sum())
    out = np.full(n_rows, np.nan)
    for start in range(0, len(windows), batch_size):
        index = torch.arange(start, min(start + batch_size, len(windows)))
        batch = windows.select(index).to(device)
        logits = model.exposure_logits(batch.positives, batch.items, batch.state_index)
        out[batch.row[batch.mask].cpu().numpy()] = logits[batch.mask].float().cpu().numpy()
    model.train(was_training)
    return out


def exposure_probabilities(
    model: Recommender, windows: WindowBatch, batch_size: int, device: torch.device
) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-exposure_logits(model, windows, batch_size, device)))


@torch.no_grad()
def target_ranks_of(
    model: Recommender,
    targets: RankingTargets,
    batch_size: int,
    device: torch.device,
    ties: str = "pessimistic",
    progress: bool = False,
) -> np.ndarray:
    """1-based full-catalogue rank of each user's held-out positive, with the
    user's earlier positives masked."""
    was_training = model.training
    model.eval()
    ranks = []
    starts = range(0, len(targets), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc="ranking", disable=not progress, leave=False):
            rows = slice(start, start + batch_size)
            scores = model.score_all(targets.history[rows].to(device)).float()
            seen = tuple(torch.from_numpy(index) for index in targets.seen_pairs(rows))
            ranks.append(target_ranks_on_device(scores, targets.target[rows], seen, ties))
    model.train(was_training)
    return np.concatenate(ranks) if ranks else np.zeros(0)


@torch.no_grad()
def candidate_recall(
    model: Recommender, targets: RankingTargets, batch_size: int, device: torch.device
) -> float:
    """Share of users whose held-out positive is among the items a two-stage
    model's candidate stage passes on (`model.candidate_items`)."""
    hits = []
    for start in range(0, len(targets), batch_size):
        rows = slice(start, start + batch_size)
        picked = model.candidate_items(targets.history[rows].to(device))
        target = targets.target[rows].to(device, torch.long)
        hits.append((picked == target.unsqueeze(1)).any(dim=1).cpu().numpy())
    return float(np.concatenate(hits).mean()) if hits else math.nan


def target_ranks_on_device(
    scores: torch.Tensor,
    targets: torch.Tensor,
    seen: tuple[torch.Tensor, torch.Tensor],
    ties: str = "pessimistic",
) -> np.ndarray:
    """`metrics.target_ranks` on the scores' own device (a GPU when the model is
    on one), without copying the [U, n_items + 1] score matrix to the host: two
    comparisons and a count per row, no sort. `seen` = (row, item) index pairs to
    leave out of the ranking (the users' earlier positives); column 0 (padding)
    is always left out and the target never is. Overwrites `scores`."""
    n_users = scores.shape[0]
    targets = targets.to(scores.device, torch.long)
    rows = torch.arange(n_users, device=scores.device)
    target_score = scores[rows, targets].clone()
    if torch.isnan(target_score).any():
        raise ValueError("a target has a NaN score")
    # NaN is neither above nor equal to anything: a left-out item counts nowhere.
    scores[seen[0].to(scores.device), seen[1].to(scores.device)] = float("nan")
    scores[:, 0] = float("nan")
    scores[rows, targets] = target_score
    target_score = target_score[:, None]
    n_higher = (scores > target_score).sum(dim=1)
    # The target itself is among the equal-scoring candidates: subtract it.
    n_tied = (scores == target_score).sum(dim=1) - 1
    return rank_from_counts(n_higher.cpu().numpy(), n_tied.cpu().numpy(), ties)


@dataclass(frozen=True)
class SplitInputs:
    """What scoring one split needs, built once (e.g. once per training run)."""

    split: str
    windows: WindowBatch
    targets: RankingTargets
    labels: np.ndarray  # [n_exposures] logged responses, frame order
    users: np.ndarray  # [n_exposures]


def prepare_split(data: ProcessedData, split: str, max_history: int) -> SplitInputs:
    frame = data.split(split)
    return SplitInputs(
        split=split,
        windows=split_windows(data, split, max_history),
        targets=build_ranking_targets(data.ranking_targets(split), max_history),
        labels=frame["response"].to_numpy(),
        users=frame["user_idx"].to_numpy(),
    )


def score_split(
    model: Recommender,
    inputs: SplitInputs,
    config: EvaluateConfig,
    untrained: Recommender | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Every offline metric of one model on a prepared split."""
    return score_split_with_ranks(model, inputs, config, untrained, progress)[0]


def score_split_with_ranks(
    model: Recommender,
    inputs: SplitInputs,
    config: EvaluateConfig,
    untrained: Recommender | None = None,
    progress: bool = False,
) -> tuple[dict[str, float], np.ndarray]:
    """`score_split` plus the per-user evidence behind its ranking metrics: the
    1-based rank of each user's held-out positive, in `inputs.targets` order."""
    device = resolve_device(config.device, "evaluate.device")
    model.to(device)
    logits = exposure_logits(model, inputs.windows, config.batch_size, device)
    labels, users = inputs.labels, inputs.users
    probs = 1.0 / (1.0 + np.exp(-logits))
    metrics = {"AUC": auc(labels, logits), "GAUC": gauc(users, labels, logits)}
    # Mean BCE of the logged responses (the validation loss).
    metrics["loss"] = float(np.mean(np.logaddexp(0.0, logits) - labels * logits))
    metrics["NCIS"] = ncis(users, labels, probs, cap=config.ncis_cap)
    if untrained is not None:
        untrained.to(device)
        base = exposure_probabilities(untrained, inputs.windows, config.batch_size, device)
        metrics["NCIS_untrained"] = ncis(users, labels, base, cap=config.ncis_cap)
        metrics["NCIS_lift"] = metrics["NCIS"] - metrics["NCIS_untrained"]
    ranks = target_ranks_of(model, inputs.targets, config.batch_size, device, config.ties, progress)
    metrics |= ranking_metrics(ranks, ks=config.ks)
    if getattr(model, "has_candidate_stage", False):
        # Two-stage DIN: how often the candidate stage passes the held-out positive
        # to DIN at all (one it misses is ranked below every candidate).
        metrics["candidate_recall"] = candidate_recall(
            model, inputs.targets, config.batch_size, device
        )
    metrics |= satisfaction_split(ranks, inputs.targets.satisfied, ks=config.ks)
    metrics["n_users"] = float(len(ranks))
    metrics["n_exposures"] = float(len(labels))
    return metrics, ranks


def per_user_evidence(inputs: SplitInputs, ranks_by_seed: Mapping[str, np.ndarray]) -> dict:
    """The per-user validation evidence the gate bootstraps over (JSON-ready):
    every ranking metric of `score_split` (HR/NDCG/MRR@K and the satisfaction
    split) is a mean of per-user terms of these ranks."""
    satisfied = inputs.targets.satisfied
    return {
        "split": inputs.split,
        "user_idx": [int(u) for u in inputs.targets.user_idx.tolist()],
        "satisfied": [None if math.isnan(v) else float(v) for v in satisfied.tolist()],
        "ranks": {
            seed: [float(r) if r != int(r) else int(r) for r in np.asarray(ranks).tolist()]
            for seed, ranks in ranks_by_seed.items()
        },
    }


def split_metrics(
    model: Recommender,
    data: ProcessedData,
    split: str,
    config: EvaluateConfig,
    untrained: Recommender | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Every offline metric of one model on `split` ("valid" or "test")."""
    inputs = prepare_split(data, split, model.max_history)
    return score_split(model, inputs, config, untrained, progress)


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _json_ready(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {name: _clean(float(value)) for name, value in metrics.items()}


def find_candidates(models_dir: Path) -> dict[str, dict]:
    """Trained candidates: every `<models_dir>/<name>/train_summary.json`."""
    found = {}
    for summary_file in sorted(Path(models_dir).glob("*/train_summary.json")):
        summary = json.loads(summary_file.read_text())
        found[summary["name"]] = summary
    return found


def evaluate_candidates(
    config: EvaluateConfig,
    processed_dir: str | Path,
    models_dir: str | Path,
    reports_dir: str | Path,
    names: list[str] | None = None,
    progress: bool = True,
) -> dict:
    """Score every trained candidate (all seeds) on the test split, for the
    record, and on the validation split, for the gate.

    Writes `<reports_dir>/candidates/<name>.json`, the per-user validation
    ranks `<reports_dir>/candidates/<name>.valid_ranks.json`,
    `<reports_dir>/metrics.json` (returned) and each seed's training curve as
    `<reports_dir>/plots/curves/<name>_seed<s>.csv`."""
    data = load_processed(processed_dir)
    reports_dir = Path(reports_dir)
    device = resolve_device(config.device, "evaluate.device")
    candidates = find_candidates(Path(models_dir))
    if names is not None:
        missing = sorted(set(names) - set(candidates))
        if missing:
            raise FileNotFoundError(f"no trained candidate(s) {missing} under {models_dir}")
        candidates = {name: candidates[name] for name in names}
    if not candidates:
        raise FileNotFoundError(f"no trained candidates (train_summary.json) under {models_dir}")
    report: dict = {"split": "test", "selection_split": "valid", "candidates": {}}
    valid_inputs: dict[int, SplitInputs] = {}  # by max_history, built once
    for name, summary in candidates.items():
        per_seed: dict[str, dict[str, float]] = {}
        valid_per_seed: dict[str, dict[str, float]] = {}
        valid_ranks: dict[str, np.ndarray] = {}
        model_dirs = {}
        inputs = None
        for seed, seed_summary in summary["seeds"].items():
            curve = Path(seed_summary.get("metrics_csv", ""))
            if curve.is_file():  # training curves as DVC plots
                curves_dir = reports_dir / "plots" / "curves"
                curves_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(curve, curves_dir / f"{name}_seed{seed}.csv")
            model = load_model(seed_summary["model_dir"], device=device)
            untrained = load_model(seed_summary["initial_model_dir"], device=device)
            metrics = split_metrics(model, data, "test", config, untrained, progress=progress)
            per_seed[seed] = metrics
            # The chosen checkpoint's validation metrics (what the gate chooses on)
            # and the per-user ranks behind them.
            if model.max_history not in valid_inputs:
                valid_inputs[model.max_history] = prepare_split(data, "valid", model.max_history)
            inputs = valid_inputs[model.max_history]
            valid_per_seed[seed], valid_ranks[seed] = score_split_with_ranks(
                model, inputs, config, untrained, progress=progress
            )
            model_dirs[seed] = seed_summary["model_dir"]
        summary_stats = aggregate_seeds(list(per_seed.values()))
        valid_stats = aggregate_seeds(list(valid_per_seed.values()))
        per_user_file = reports_dir / "candidates" / f"{name}.valid_ranks.json"
        entry = {
            "backbone": summary["backbone"],
            "guidance": summary["guidance"],
            "seeds": {seed: _json_ready(m) for seed, m in per_seed.items()},
            "mean": _json_ready({k: v["mean"] for k, v in summary_stats.items()}),
            "std": _json_ready({k: v["std"] for k, v in summary_stats.items()}),
            "valid": {
                "seeds": {seed: _json_ready(m) for seed, m in valid_per_seed.items()},
                "mean": _json_ready({k: v["mean"] for k, v in valid_stats.items()}),
                "std": _json_ready({k: v["std"] for k, v in valid_stats.items()}),
                "per_user_file": str(per_user_file),
            },
            "model_dirs": model_dirs,
        }
        report["candidates"][name] = entry
        out = reports_dir / "candidates" / f"{name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(entry, indent=2) + "\n")
        if inputs is not None:
            evidence = per_user_evidence(inputs, valid_ranks)
            per_user_file.write_text(json.dumps(evidence) + "\n")
    (reports_dir / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
