"""RecBole 1.2.1 side of the side-by-side benchmark (see BENCHMARKS.md).

Runs RecBole's own SASRec or GRU4Rec on the ML-100k copy RecBole ships, with
the protocol of the reference figures: chronological leave-one-out
(`split: {LS: valid_and_test}`, `order: TO`), full ranking with history
masked, CE loss without negative sampling, max sequence length 50, batch 256,
seed 2020, RecBole's default model settings, validation NDCG@10 for early
stopping (patience 10). It records seconds per training epoch (training only;
validation is timed separately), peak RSS, and validation/test NDCG@10 and
Recall@10 of the best-on-validation epoch. Quality figures are only the
reference numbers when the run converged (early stop); a 2-epoch run is for
speed.

    python benchmarks/bench_recbole.py --model SASRec --epochs 2 --threads 1

Needs recbole 1.2.1 (`pip install --no-deps recbole==1.2.1`) plus the small
packages it imports on the path used here: colorlog, texttable, tensorboard.
RecBole writes `log/`, `log_tensorboard/` and `saved/` into the working
directory, so this runs inside a temporary directory. `recbole.quick_start` is
never imported (it imports an old ray that needs pkg_resources).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import machine_info, peak_rss_mib

MODELS = ("SASRec", "GRU4Rec")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def restore_numpy_aliases() -> None:
    """NumPy 2 removed aliases that RecBole 1.2.1 still uses; put them back
    before importing it. Only adds names that are missing."""
    aliases = {
        "float_": np.float64,
        "complex_": np.complex128,
        "unicode_": np.str_,
        "string_": np.bytes_,
        "float": float,
        "int": int,
        "bool": bool,
        "long": int,
    }
    for name, value in aliases.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def ml100k_data_path() -> Path:
    """Folder holding RecBole's `ml-100k/` dataset folder."""
    from mtrec.data.sources import recbole_ml100k_dir

    return recbole_ml100k_dir().parent


def protocol_config(model: str, epochs: int, seed: int, stopping_step: int) -> dict[str, Any]:
    """RecBole config overrides for the shared protocol (everything else is
    RecBole's default for the model and for ml-100k)."""
    return {
        "data_path": str(ml100k_data_path()),
        "checkpoint_dir": "saved",
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "MAX_ITEM_LIST_LENGTH": 50,
        "train_batch_size": 256,
        "eval_batch_size": 4096,
        "epochs": epochs,
        "stopping_step": stopping_step,
        "metrics": ["Recall", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "seed": seed,
        "reproducibility": True,
        "use_gpu": torch.cuda.is_available(),
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "worker": 0,
        "state": "WARNING",
    }


def run_recbole(
    model_name: str, epochs: int, threads: int, seed: int = 2020, stopping_step: int = 10
) -> dict[str, Any]:
    """Train one RecBole model under the protocol and return the measurements.

    Must run in a scratch working directory (RecBole writes there)."""
    if model_name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model_name!r}")
    torch.set_num_threads(threads)
    restore_numpy_aliases()
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import GRU4Rec, SASRec
    from recbole.trainer import Trainer
    from recbole.utils import early_stopping, init_logger, init_seed

    model_class = {"SASRec": SASRec, "GRU4Rec": GRU4Rec}[model_name]
    started = time.perf_counter()
    # RecBole's Config also reads `--key=value` pairs from sys.argv; ours are
    # not RecBole settings, so hide them while it parses.
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(
            model=model_class,
            dataset="ml-100k",
            config_dict=protocol_config(model_name, epochs, seed, stopping_step),
        )
    finally:
        sys.argv = argv
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = model_class(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    trainer.eval_collector.data_collect(train_data)
    setup_seconds = time.perf_counter() - started

    train_seconds: list[float] = []
    # Process CPU time: less sensitive than wall time to other jobs on a shared
    # machine (with one torch thread it is close to the work done).
    cpu_train_seconds: list[float] = []
    cpu_epoch_seconds: list[float] = []
    valid_seconds: list[float] = []
    train_losses: list[float] = []
    valid_ndcg: list[float] = []
    best_score, steps_without_gain, best_epoch = -np.inf, 0, -1
    best_state: dict[str, torch.Tensor] | None = None
    stopped_early = False
    for epoch in range(epochs):
        tick, cpu_tick = time.perf_counter(), time.process_time()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        train_seconds.append(time.perf_counter() - tick)
        cpu_train_seconds.append(time.process_time() - cpu_tick)
        train_losses.append(float(loss))
        tick = time.perf_counter()
        valid_result = trainer.evaluate(valid_data, load_best_model=False)
        valid_seconds.append(time.perf_counter() - tick)
        cpu_epoch_seconds.append(time.process_time() - cpu_tick)
        score = float(valid_result["ndcg@10"])
        valid_ndcg.append(score)
        best_score, steps_without_gain, stop, improved = early_stopping(
            score, best_score, steps_without_gain, max_step=stopping_step, bigger=True
        )
        if improved:
            best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
        print(
            f"[recbole {model_name}] epoch {epoch}: train {train_seconds[-1]:.1f}s "
            f"loss {loss:.2f} valid NDCG@10 {score:.4f}",
            file=sys.stderr,
            flush=True,
        )
        if stop:
            stopped_early = True
            break

    # Best-on-validation weights, kept in memory (RecBole's own checkpoint
    # reload would need torch.load(weights_only=False)).
    model.load_state_dict(best_state)
    best_valid = trainer.evaluate(valid_data, load_best_model=False)
    test_result = trainer.evaluate(test_data, load_best_model=False)
    device = config["device"]
    return {
        "side": "recbole",
        "framework_version": _recbole_version(),
        "model": model_name,
        "dataset": "ml-100k (RecBole's copy, all ratings kept)",
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
        "n_train_samples": len(train_data.dataset),
        "epochs_requested": epochs,
        "epochs_run": len(train_seconds),
        "stopped_early": stopped_early,
        "best_epoch": best_epoch,
        "seconds_per_epoch": float(np.mean(train_seconds)),
        "train_seconds": train_seconds,
        "valid_seconds": valid_seconds,
        "cpu_train_seconds": cpu_train_seconds,
        "cpu_seconds_per_epoch_incl_validation": float(np.mean(cpu_epoch_seconds)),
        "setup_seconds": setup_seconds,
        "train_losses": train_losses,
        "valid_ndcg_at_10_by_epoch": valid_ndcg,
        "valid_ndcg_at_10": float(best_valid["ndcg@10"]),
        "valid_recall_at_10": float(best_valid["recall@10"]),
        "test_ndcg_at_10": float(test_result["ndcg@10"]),
        "test_recall_at_10": float(test_result["recall@10"]),
        "peak_rss_mib": peak_rss_mib(),
        "peak_gpu_mib": (
            torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        ),
        **machine_info(threads, str(device)),
        "protocol": {
            "split": "LS valid_and_test, order TO",
            "ranking": "full, history masked",
            "loss": "CE, no negative sampling",
            "max_seq_len": 50,
            "batch_size": 256,
            "seed": seed,
            "early_stopping": f"valid NDCG@10, patience {stopping_step}",
        },
    }


def _recbole_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("recbole")


def write_result(result: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--epochs", type=int, default=2, help="max epochs (default 2: speed)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--stopping-step", type=int, default=10, help="early-stop patience")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args(argv)
    out = args.out or RESULTS_DIR / f"recbole_{args.model}_{args.epochs}ep.json"
    out = out.resolve()
    with tempfile.TemporaryDirectory(prefix="recbole-bench-") as scratch:
        here = Path.cwd()
        os.chdir(scratch)
        try:
            result = run_recbole(
                args.model, args.epochs, args.threads, args.seed, args.stopping_step
            )
        finally:
            os.chdir(here)
    write_result(result, out)
    print(json.dumps({k: result[k] for k in ("model", "seconds_per_epoch", "peak_rss_mib")}))


if __name__ == "__main__":
    main()
