"""One training loop for every recommender; the loss is plugged in.

Per epoch: one pass over the training windows (every exposure of a window in
one forward pass), then a validation callable, early stopping on its
`monitor` metric, the best model saved as a model directory, a checkpoint of
everything needed to continue (weights, optimiser, RNG states, counters,
history, the best epoch's weights) and the metrics CSV rewritten from that
history. A run killed after epoch j and started again with the same arguments
resumes from the checkpoint and ends with the same weights and metrics as an
uninterrupted run: the batch order of epoch e depends only on (seed, e), and
the RNG states (dropout) are restored.

The checkpoint may live outside `out_dir` (`checkpoint_dir`): DVC deletes a
stage's outputs before it runs the stage again, so the pipeline keeps it in a
cache folder that is no output. It holds tensors and plain Python values only
and is loaded with `weights_only=True`: a checkpoint that needs pickle to load
(arbitrary code) is refused.

Wall-clock timings are not part of `metrics.csv` (they differ on every run and
would make the output's hash irreproducible): they go to `timing.csv`, which
the pipeline's .dvcignore keeps out of DVC's hashes.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import math
import os
import pickle
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from mtrec.config import TrainConfig
from mtrec.data.sequences import WindowBatch, window_loader
from mtrec.models import Recommender, save_model
from mtrec.training.distributed import (
    average_gradients,
    barrier,
    broadcast,
    check_in_sync,
    current_world,
    device_for,
    shard_batches,
    steps_per_epoch,
)
from mtrec.training.losses import Loss, TrainingClock

CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.csv"
TIMING_FILE = "timing.csv"
TIMING_KEYS = ("train_seconds", "train_cpu_seconds")
BEST_DIR = "best"
MINIMISED = ("loss",)

Validate = Callable[[Recommender], dict[str, float]]
# Called after each epoch's checkpoint is written: (epoch, epoch record).
EpochCallback = Callable[[int, dict[str, float]], None]


class TrainingStopped(RuntimeError):
    """Raised when `fit(stop_after_epochs=...)` ends an invocation early (a simulated kill)."""


@dataclass
class FitResult:
    best_epoch: int
    best_value: float
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    best_model_dir: Path
    metrics_csv: Path
    epochs_run: int
    stopped_early: bool
    seconds_per_epoch: float
    cpu_seconds_per_epoch: float
    resumed_from_epoch: int = 0
    extra: dict = field(default_factory=dict)
    checkpoint_path: Path | None = None


def _rng_state() -> dict:
    """Every RNG the loop touches, as tensors and plain values (no pickled objects)."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": numpy_state["key"].numpy().astype(np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain(value):
    """A metric value as a plain Python number (numpy scalars do not load with
    weights_only=True)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    return float(value)


class CheckpointRefused(RuntimeError):
    """A checkpoint that is not tensors and plain values only (it would need pickle)."""


def load_checkpoint(path: Path) -> dict:
    """Tensors and plain values only (`weights_only=True`): a checkpoint that holds
    any other object, e.g. one crafted to run code when unpickled, is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointRefused(
            f"{path} is not a tensors-only checkpoint and was not loaded ({error}). "
            "Delete it to train from scratch."
        ) from error


def run_fingerprint(config: TrainConfig, seed: int, extra: dict | None = None) -> str:
    """What must match for a checkpoint to be resumed (not the stop/resume knobs)."""
    relevant = config.model_dump(mode="json", exclude={"resume", "num_threads", "device"})
    payload = json.dumps({"train": relevant, "seed": seed, "extra": extra or {}}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _improved(value: float, best: float, monitor: str) -> bool:
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value < best if monitor in MINIMISED else value > best


def _write_csv(path: Path, history: Sequence[dict[str, float]]) -> None:
    if not history:
        return
    columns: list[str] = []
    for record in history:
        columns.extend(name for name in record if name not in columns)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def trainable_parameters(model: Recommender, loss_fn: Loss) -> list[torch.nn.Parameter]:
    """The model's parameters plus those a loss owns (`loss.extra_parameters()`,
    e.g. PNFRec's negative encoder), each once."""
    parameters, seen = [], set()
    for parameter in [*model.parameters(), *loss_fn.extra_parameters()]:
        if id(parameter) not in seen and parameter.requires_grad:
            seen.add(id(parameter))
            parameters.append(parameter)
    return parameters


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The training step's arithmetic (TrainConfig.precision): bf16 autocast or plain fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_one_epoch(
    model: Recommender,
    loss_fn: Loss,
    optimizer: torch.optim.Optimizer,
    windows: WindowBatch,
    config: TrainConfig,
    seed: int,
    clock: TrainingClock,
    device: torch.device,
    parameters: Sequence[torch.nn.Parameter] | None = None,
    progress: bool = False,
) -> float:
    """One pass over the windows in the order fixed by (seed, epoch); mean loss."""
    model.train()
    loss_fn.train()
    parameters = list(model.parameters()) if parameters is None else parameters
    order_seed = seed * 100_003 + clock.epoch
    loader = window_loader(windows, config.batch_size, shuffle=True, seed=order_seed)
    world = current_world()
    # Under torchrun every process sees the same order and takes its share.
    batches = shard_batches(loader, world)
    total, count = 0.0, 0
    bar = tqdm(
        batches,
        total=steps_per_epoch(len(loader), world),
        desc=f"epoch {clock.epoch + 1}",
        disable=not progress or not world.is_main,
        leave=False,
    )
    for batch in bar:
        batch = batch.to(device)
        with autocast(device, config.precision):
            outputs = model(batch.positives, batch.items, batch.state_index)
            loss = loss_fn(batch, outputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(parameters, world)
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        clock.step += 1
        total += float(loss.detach())
        count += 1
        bar.set_postfix(loss=f"{total / count:.4f}")
    return total / max(count, 1)


def fit(
    model: Recommender,
    loss_fn: Loss,
    train_windows: WindowBatch,
    validate: Validate,
    config: TrainConfig,
    out_dir: str | Path,
    seed: int,
    clock: TrainingClock | None = None,
    device: torch.device | None = None,
    callbacks: Sequence[EpochCallback] = (),
    fingerprint_extra: dict | None = None,
    item_ids: Sequence[str] | None = None,
    stop_after_epochs: int | None = None,
    progress: bool = False,
    checkpoint_dir: str | Path | None = None,
) -> FitResult:
    """Train `model` (already seeded and built) until early stopping or
    `max_epochs`, checkpointing every epoch in `checkpoint_dir` (default:
    `out_dir`). Returns the best epoch chosen on `validate(model)[config.monitor]`;
    its model is written to `out_dir/best` (also when every epoch was run by an
    earlier, interrupted call whose outputs were deleted since).

    Not settings of the run (they are not in params.yaml and do not change the
    result): `stop_after_epochs` raises `TrainingStopped` after that many epochs
    of this call, as if killed (testing resume); `progress` shows tqdm bars."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out_dir
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    # Under torchrun (recommender.train.nproc > 1): rank 0 validates, decides
    # and writes; the others train their share of each epoch (distributed.py).
    world = current_world()
    device = device_for(world, device or torch.device("cpu"))
    clock = clock or TrainingClock()
    model.to(device)
    loss_fn.to(device)  # a loss may have parameters of its own (PNFRec)
    parameters = trainable_parameters(model, loss_fn)
    optimizer = torch.optim.Adam(
        parameters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    n_batches = math.ceil(len(train_windows) / config.batch_size)
    clock.steps_per_epoch = max(1, steps_per_epoch(n_batches, world))
    checkpoint_path = checkpoint_dir / CHECKPOINT_FILE
    best_dir = out_dir / BEST_DIR
    metrics_csv = out_dir / METRICS_FILE
    timing_csv = out_dir / TIMING_FILE
    fingerprint = run_fingerprint(config, seed, fingerprint_extra)

    history: list[dict[str, float]] = []
    timings: list[dict[str, float]] = []
    best_value, best_epoch, bad_epochs, finished = float("nan"), 0, 0, False
    best_metrics: dict[str, float] = {}
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from = 0
    if config.resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        if state["fingerprint"] == fingerprint:
            model.load_state_dict(state["model"])
            # None: a checkpoint from before every loss was a Loss (nn.Module).
            loss_fn.load_state_dict(state["loss"] or {})
            optimizer.load_state_dict(state["optimizer"])
            history, timings = state["history"], state["timings"]
            best_value, best_epoch = state["best_value"], state["best_epoch"]
            best_metrics, bad_epochs = state["best_metrics"], state["bad_epochs"]
            best_state = state["best_model"]
            finished = state["finished"]
            clock.step, clock.epoch = state["clock_step"], state["clock_epoch"]
            _set_rng_state(state["rng"])
            resumed_from = clock.epoch
    if resumed_from == 0 and not finished and world.is_main:
        # A fresh run: a best model left by an older, different run must not survive.
        shutil.rmtree(best_dir, ignore_errors=True)
    if world.distributed and not resumed_from:
        # Same initial weights everywhere (same seed), different dropout masks.
        torch.manual_seed(seed * 1_000 + world.rank)

    epochs_this_call = 0
    while not finished and clock.epoch < config.max_epochs:
        started, cpu_started = time.perf_counter(), time.process_time()
        train_loss = train_one_epoch(
            model,
            loss_fn,
            optimizer,
            train_windows,
            config,
            seed,
            clock,
            device,
            parameters,
            progress=progress,
        )
        train_seconds = time.perf_counter() - started
        # CPU seconds of this process: comparable across runs on a shared machine.
        train_cpu_seconds = time.process_time() - cpu_started
        check_in_sync(parameters, world)
        metrics = broadcast(validate(model) if world.is_main else None, world)
        clock.epoch += 1
        epochs_this_call += 1
        metrics = {name: _plain(value) for name, value in metrics.items()}
        record = {"epoch": clock.epoch, "train_loss": float(train_loss)}
        record |= {f"valid_{name}": value for name, value in metrics.items()}
        history.append(record)
        timing = {"epoch": clock.epoch, "train_seconds": train_seconds}
        timings.append(timing | {"train_cpu_seconds": train_cpu_seconds})
        value = metrics[config.monitor]
        if _improved(value, best_value, config.monitor):
            best_value, best_epoch, best_metrics, bad_epochs = value, clock.epoch, metrics, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if world.is_main:
                save_model(model, best_dir, item_ids=item_ids, metadata={"epoch": clock.epoch})
        else:
            bad_epochs += 1
        finished = bad_epochs >= config.patience or clock.epoch >= config.max_epochs
        if world.is_main:
            _atomic_save(
                {
                    "fingerprint": fingerprint,
                    "model": model.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "timings": timings,
                    "best_value": float(best_value),
                    "best_epoch": best_epoch,
                    "best_metrics": best_metrics,
                    "best_model": best_state,
                    "bad_epochs": bad_epochs,
                    "finished": finished,
                    "clock_step": clock.step,
                    "clock_epoch": clock.epoch,
                    "rng": _rng_state(),
                },
                checkpoint_path,
            )
            _write_csv(metrics_csv, history)
            _write_csv(timing_csv, timings)
            for callback in callbacks:
                callback(clock.epoch, record | timings[-1])
        barrier(world)  # the checkpoint is on disk before anyone may stop
        if not finished and stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
            raise TrainingStopped(f"stopped after epoch {clock.epoch} (stop_after_epochs)")

    if best_state is None:
        raise RuntimeError(f"no epoch produced a finite {config.monitor!r}; nothing saved")
    if world.is_main:
        if not best_dir.exists():  # trained by an earlier call whose outputs are gone
            best_model = copy.deepcopy(model)
            best_model.load_state_dict(best_state)
            save_model(best_model, best_dir, item_ids=item_ids, metadata={"epoch": best_epoch})
        _write_csv(metrics_csv, history)
        _write_csv(timing_csv, timings)
    barrier(world)
    seconds = [r["train_seconds"] for r in timings]
    return FitResult(
        best_epoch=best_epoch,
        best_value=best_value,
        best_metrics=best_metrics,
        history=[record | timing for record, timing in zip(history, timings, strict=True)],
        best_model_dir=best_dir,
        metrics_csv=metrics_csv,
        epochs_run=clock.epoch,
        stopped_early=clock.epoch < config.max_epochs,
        seconds_per_epoch=float(np.mean(seconds)) if seconds else float("nan"),
        cpu_seconds_per_epoch=float(np.mean([r["train_cpu_seconds"] for r in timings]))
        if timings
        else float("nan"),
        resumed_from_epoch=resumed_from,
        checkpoint_path=checkpoint_path,
    )
