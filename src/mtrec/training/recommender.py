"""The `train_recommender` step: one candidate (backbone x guidance), each seed.

Layout written under `out_dir` (= `<models>/<backbone>-<guidance>`):
    train_summary.json          name, backbone, guidance, per seed: model_dir,
                                initial_model_dir, best_epoch, valid metrics
    timing.json                 wall-clock and CPU seconds per epoch (not hashed by DVC)
    seed_<s>/best/              the chosen model (validation only), load_model()
    seed_<s>/initial/           the same seed's untrained model (NCIS baseline)
    seed_<s>/checkpoint.pt      resumable state of the last epoch (without a
                                `checkpoint_root`; see below)
    seed_<s>/metrics.csv        per-epoch train loss and valid metrics (DVC plot)
    seed_<s>/timing.csv         per-epoch seconds (not hashed by DVC)

With `checkpoint_root` (what the pipeline's stage uses) the checkpoints live in
`<checkpoint_root>/<name>/<inputs key>/seed_<s>/` instead: DVC deletes a stage's
outputs before it reruns the stage, so a checkpoint inside them could never
resume an interrupted `dvc repro`. The key hashes everything the run depends on
(the training config, the data files, the mtrec source), so a checkpoint of
other inputs is never resumed; the candidate's folder there is removed once
every seed is done.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mtrec.config import EvaluateConfig, RecommenderConfig, TrainConfig
from mtrec.data.processed import ProcessedData, load_processed
from mtrec.data.sequences import build_windows
from mtrec.device import resolve_device
from mtrec.evaluation.evaluate import prepare_split, score_split
from mtrec.models import build_model, save_model
from mtrec.seeding import seed_everything
from mtrec.training.distributed import current_world
from mtrec.training.loop import EpochCallback, FitResult, fit, run_fingerprint
from mtrec.training.losses import (
    CatalogueObjective,
    LossContext,
    TrainingClock,
    check_satisfaction_use,
    item_proposal,
    make_loss,
)

logger = logging.getLogger(__name__)

SUMMARY_FILE = "train_summary.json"
TIMING_FILE = "timing.json"
PROCESSED_FILES = ("train.parquet", "valid.parquet", "test.parquet", "items.parquet", "meta.json")


def candidate_name(backbone: str, guidance: str) -> str:
    return f"{backbone}-{guidance}"


def attach_exposure_columns(
    frame: pd.DataFrame, split: str, table: pd.DataFrame, columns: Sequence[str]
) -> pd.DataFrame:
    """Join per-exposure columns (e.g. rewards/<backbone>.parquet, keyed by `split` and
    `split_row` = row order within the split) onto one split's exposures."""
    missing = [c for c in ("split", "split_row", *columns) if c not in table.columns]
    if missing:
        raise KeyError(f"per-exposure table lacks columns {missing}")
    part = table[table["split"] == split].set_index("split_row").sort_index()
    if len(part) != len(frame) or not np.array_equal(part.index, np.arange(len(frame))):
        raise ValueError(f"per-exposure table does not cover the {split} rows one to one")
    for key in ("user_idx", "item_idx"):
        if key in part.columns and not np.array_equal(part[key], frame[key]):
            raise ValueError(f"per-exposure table disagrees with the {split} split on {key}")
    out = frame.copy()
    for column in columns:
        values = part[column].to_numpy(np.float64)
        if np.isnan(values).any():
            raise ValueError(f"column {column!r} has NaN for {split} exposures")
        out[column] = values
    return out


@dataclass
class SeedResult:
    seed: int
    model_dir: Path
    initial_model_dir: Path
    fit: FitResult


def train_seed(
    config: RecommenderConfig,
    backbone: str,
    guidance: str,
    data: ProcessedData,
    out_dir: Path,
    seed: int,
    rewards: pd.DataFrame | Callable[[tuple[str, ...]], pd.DataFrame] | None = None,
    callbacks: Sequence[EpochCallback] = (),
    stop_after_epochs: int | None = None,
    progress: bool = False,
    checkpoint_dir: Path | None = None,
) -> SeedResult:
    """Train one seed of a candidate; the checkpoint is chosen on validation.
    `stop_after_epochs` and `progress`: see `loop.fit` (testing / interactive knobs)."""
    train_config = config.train_for(backbone)
    if train_config.num_threads is not None:
        torch.set_num_threads(train_config.num_threads)
    device = resolve_device(train_config.device, "recommender.train.device")
    model_config = config.backbone_config(backbone)
    seed_everything(seed)
    model = build_model(model_config, data.n_items)
    if getattr(model, "has_candidate_stage", False):
        model.fit_candidates(data.train)  # DIN's two-stage scoring (DINConfig.candidates)
    item_ids = data.items.sort_values("item_idx")["item_id"].astype(str).tolist()
    initial_dir = out_dir / "initial"
    if current_world().is_main:  # under torchrun, rank 0 writes
        save_model(model, initial_dir, item_ids=item_ids, metadata={"seed": seed})

    clock = TrainingClock()
    context = LossContext(
        model=model,
        catalogue_ce_weight=train_config.catalogue_ce_weight,
        clock=clock,
        catalogue=catalogue_objective(train_config, data),
    )
    options = config.options_for(backbone, guidance)
    loss = make_loss(guidance, options, context)
    columns = loss.required_columns
    check_satisfaction_use(guidance, columns)
    train_frame = data.train
    # Columns the guidance asks for come from the training exposures when they
    # have them (e.g. a baseline that declares it trains on `rating`), else
    # from the per-exposure table (rewards/<backbone>.parquet).
    joined = [c for c in columns if c not in train_frame.columns]
    if joined:
        if rewards is None:
            raise ValueError(f"guidance {guidance!r} needs {joined}: set recommender.rewards_path")
        if callable(rewards):
            rewards = rewards(tuple(joined))
        table = loss.prepare_table(rewards)
        train_frame = attach_exposure_columns(train_frame, "train", table, joined)
    windows = build_windows(train_frame, model_config.max_history, extra_columns=columns)
    valid_inputs = prepare_split(data, "valid", model_config.max_history)
    evaluate_config = EvaluateConfig(
        batch_size=train_config.eval_batch_size, device=train_config.device
    )

    def validate(current_model) -> dict[str, float]:
        return score_split(current_model, valid_inputs, evaluate_config)

    result = fit(
        model,
        loss,
        windows,
        validate,
        train_config,
        out_dir,
        seed,
        clock=clock,
        device=device,
        callbacks=callbacks,
        fingerprint_extra=_fingerprint_extra(config, backbone, guidance),
        item_ids=item_ids,
        stop_after_epochs=stop_after_epochs,
        progress=progress,
        checkpoint_dir=checkpoint_dir,
    )
    return SeedResult(seed, result.best_model_dir, initial_dir, result)


def catalogue_objective(config: TrainConfig, data: ProcessedData) -> CatalogueObjective:
    """The next-item softmax of `config`, its proposal from the training positives."""
    if config.catalogue_loss == "full":
        return CatalogueObjective()
    train = data.train
    positives = torch.tensor(train.loc[train["response"] > 0.5, "item_idx"].to_numpy())
    alpha = 1.0 if config.catalogue_loss == "in_batch" else config.catalogue_sampling_alpha
    return CatalogueObjective(
        kind=config.catalogue_loss,
        n_negatives=config.catalogue_negatives,
        proposal=item_proposal(positives, data.n_items, alpha),
    )


def _fingerprint_extra(config: RecommenderConfig, backbone: str, guidance: str) -> dict:
    return {
        "backbone": config.backbone_config(backbone).model_dump(mode="json"),
        "guidance": guidance,
        "options": config.options_for(backbone, guidance),
    }


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_digest() -> str:
    """One hash of the mtrec package's source: new code never resumes old checkpoints."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(_file_digest(path).encode())
    return digest.hexdigest()


def inputs_key(
    config: RecommenderConfig,
    backbone: str,
    guidance: str,
    processed_dir: Path,
    rewards_table: Path | None,
) -> str:
    """A hash of everything a candidate's training reads (config, data, code)."""
    files = [processed_dir / name for name in PROCESSED_FILES]
    if rewards_table is not None:
        files.append(rewards_table)
    payload = {
        "train": run_fingerprint(
            config.train_for(backbone), 0, _fingerprint_extra(config, backbone, guidance)
        ),
        "files": {str(path): _file_digest(path) for path in files if path.is_file()},
        "source": source_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def train_recommender(
    config: RecommenderConfig,
    backbone: str,
    guidance: str,
    processed_dir: str | Path,
    out_dir: str | Path,
    seeds: Sequence[int] | None = None,
    rewards_path: str | Path | None = None,
    callbacks: Sequence[EpochCallback] = (),
    stop_after_epochs: int | None = None,
    progress: bool = False,
    checkpoint_root: str | Path | None = None,
) -> dict:
    """Train candidate `<backbone>-<guidance>` for each seed (default:
    config.seeds) into `out_dir`; writes its train_summary.json and timing.json
    and returns the summary with the timings (seconds per epoch) merged in.
    `stop_after_epochs` (testing resume) and `progress` (bars): see `loop.fit`."""
    out_dir = Path(out_dir)
    name = candidate_name(backbone, guidance)
    data = load_processed(processed_dir)
    table = rewards_path if rewards_path is not None else config.rewards_table(backbone)
    rewards = None if table is None else _reward_table_reader(Path(table), backbone)
    seeds = list(config.seeds if seeds is None else seeds)
    checkpoints = None
    if checkpoint_root is not None:
        reads_rewards = table is not None and Path(table).is_file()
        key = inputs_key(
            config, backbone, guidance, Path(processed_dir), Path(table) if reads_rewards else None
        )
        candidate_root = Path(checkpoint_root) / name
        if candidate_root.exists():  # checkpoints of other inputs can never be resumed
            for other in candidate_root.iterdir():
                if other.name != key:
                    shutil.rmtree(other, ignore_errors=True)
        checkpoints = candidate_root / key
    per_seed: dict[str, dict] = {}
    timing: dict[str, dict] = {}
    for seed in seeds:
        result = train_seed(
            config,
            backbone,
            guidance,
            data,
            out_dir / f"seed_{seed}",
            seed,
            rewards,
            callbacks,
            stop_after_epochs=stop_after_epochs,
            progress=progress,
            checkpoint_dir=None if checkpoints is None else checkpoints / f"seed_{seed}",
        )
        if result.fit.resumed_from_epoch:
            logger.info(
                "%s seed %d: resumed after epoch %d from %s",
                name,
                seed,
                result.fit.resumed_from_epoch,
                result.fit.checkpoint_path,
            )
        per_seed[str(seed)] = {
            "model_dir": str(result.model_dir),
            "initial_model_dir": str(result.initial_model_dir),
            "metrics_csv": str(result.fit.metrics_csv),
            "best_epoch": result.fit.best_epoch,
            "epochs_run": result.fit.epochs_run,
            "valid": _finite(result.fit.best_metrics),
        }
        timing[str(seed)] = {
            "seconds_per_epoch": result.fit.seconds_per_epoch,
            "cpu_seconds_per_epoch": result.fit.cpu_seconds_per_epoch,
            "resumed_from_epoch": result.fit.resumed_from_epoch,
        }
    summary = {
        "name": name,
        "backbone": backbone,
        "guidance": guidance,
        "monitor": config.train_for(backbone).monitor,
        "seeds": per_seed,
    }
    seconds = float(np.mean([t["seconds_per_epoch"] for t in timing.values()]))
    if current_world().is_main:  # under torchrun, rank 0 writes
        # The summary is a DVC output: no wall-clock values (they would change its hash
        # on every run). Timings go to timing.json, which .dvcignore keeps out of hashes.
        (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        timing_report = {"seconds_per_epoch": seconds, "seeds": timing}
        (out_dir / TIMING_FILE).write_text(json.dumps(timing_report, indent=2) + "\n")
        if checkpoints is not None:
            shutil.rmtree(checkpoints.parent, ignore_errors=True)
    for seed, entry in per_seed.items():
        entry.update(timing[seed])
    return summary | {"seconds_per_epoch": seconds}


# Columns that key the per-exposure table to a split's rows (attach_exposure_columns).
TABLE_KEYS = ("split", "split_row", "user_idx", "item_idx")


def _reward_table_reader(path: Path, backbone: str) -> Callable[[tuple[str, ...]], pd.DataFrame]:
    """Reads the per-exposure reward table on first use only (a guidance without
    reward columns never opens it), then hands every seed the same frame.
    `read(columns)`: when the table has every asked column, only those and the
    keys are read (the table holds ~40 columns; at 10M exposures all of them
    took GBs); otherwise all of it, for a loss that derives its columns from
    others (`prepare_table`)."""

    @functools.cache
    def read(columns: tuple[str, ...]) -> pd.DataFrame:
        if not path.exists():
            raise FileNotFoundError(
                f"{path} does not exist: run `mtrec train-reward --backbone {backbone}` "
                f"and `mtrec read-out-rewards --backbone {backbone}` first"
            )
        import pyarrow.parquet as pq

        available = set(pq.read_schema(path).names)
        if not set(columns) <= available:
            return pd.read_parquet(path)
        keys = [c for c in TABLE_KEYS if c in available]
        return pd.read_parquet(path, columns=[*keys, *(c for c in columns if c not in keys)])

    return read


def _finite(metrics: Mapping[str, float]) -> dict[str, float | None]:
    return {k: (None if v != v else float(v)) for k, v in metrics.items()}
