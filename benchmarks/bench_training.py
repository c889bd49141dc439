"""Side-by-side speed benchmark: mtrec's training against RecBole 1.2.1.

One invocation runs, for each model, RecBole's side (bench_recbole.py) and
ours, each in its own subprocess (so peak RSS is each side's own), with the
same torch thread count and epoch budget, and writes one JSON comparing
seconds per training epoch (ratio RecBole / mtrec), peak RSS and, when the
runs converged (early stopping within the epoch budget), test NDCG@10 and
Recall@10.

    python benchmarks/bench_training.py --epochs 2 --threads 1
    python benchmarks/bench_training.py --epochs 300 --threads 2   # to convergence

Our side, on the same ML-100k file (RecBole's copy, every rating kept as a
positive, no k-core), runs the pipeline's own steps: ingest -> validate
(k_core 0) -> leave-one-out split (seed 2020; the last positive is test, the
second-to-last valid, as RecBole's `LS: valid_and_test` with `order: TO`),
then `mtrec.training.train_recommender` with guidance "none" and the
full-catalogue softmax CE (`catalogue_ce_weight` 1, RecBole's CE objective)
added to the exposure BCE on sampled negatives, max history 50, validation
NDCG@10 with RecBole's patience (stopping_step 10 = stop after 11 epochs
without gain). Quality: full ranking over all items with the history masked;
with one held-out item Recall@10 equals HR@10.

What differs by design (the point of the comparison): RecBole makes one
training sample per sequence prefix (~97k forward passes per epoch on
ML-100k), mtrec one causal pass per user window; batch sizes therefore count
different things (RecBole: 256 prefixes, mtrec: TrainConfig.batch_size
windows). Model sizes match RecBole's defaults (SASRec 2 layers, 2 heads,
hidden 64, inner 256; GRU4Rec embedding 64, hidden 128, 1 layer); dropout
follows each side's own default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine_info, peak_rss_mib

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
MODELS = {"SASRec": "sasrec", "GRU4Rec": "gru4rec"}
SEED = 2020
RECBOLE_STOPPING_STEP = 10
# RecBole 1.2.1's converged test NDCG@10 on this protocol (BENCHMARKS.md, H100 runs):
# what --test-curve times our side against unless --reference-test-ndcg says otherwise.
RECBOLE_TEST_NDCG = {"SASRec": 0.0637, "GRU4Rec": 0.0628}
# and its converged validation NDCG@10: the time to it is what a recipe may be chosen by.
RECBOLE_VALID_NDCG = {"SASRec": 0.0737, "GRU4Rec": 0.0749}
# The epoch at which that run of RecBole's SASRec reached it: 30 epochs run, and
# stopping_step 10 stops after 11 epochs without gain, so its best was the 19th.
RECBOLE_EPOCHS_TO_QUALITY = {"SASRec": 30 - (RECBOLE_STOPPING_STEP + 1)}


def check_same_setup(recbole: dict[str, Any], model: str, threads: int) -> None:
    """A RecBole result is comparable only for the same model and thread count."""
    if recbole.get("model") != model or recbole.get("torch_threads") != threads:
        raise ValueError("the RecBole result is for another model or thread count")


def cpu_to_quality_against_recbole(mtrec: dict[str, Any], recbole: dict[str, Any]) -> dict:
    """Process CPU seconds to RecBole's converged test NDCG@10: ours measured (the
    test curve), RecBole's estimated as its measured CPU seconds per epoch (same
    machine and threads) times the epochs its converged run needed
    (RECBOLE_EPOCHS_TO_QUALITY; training it to convergence on CPU takes hours)."""
    model = mtrec["model"]
    check_same_setup(recbole, model, mtrec["torch_threads"])
    ours = (mtrec.get("time_to_reference_test_ndcg") or {}).get("cpu_seconds")
    epochs = RECBOLE_EPOCHS_TO_QUALITY.get(model)
    theirs = recbole["cpu_seconds_per_epoch_incl_validation"] * epochs if epochs else None
    return {
        "mtrec_cpu_seconds_measured": ours,
        "recbole_cpu_seconds_per_epoch_measured": recbole["cpu_seconds_per_epoch_incl_validation"],
        "recbole_epochs_to_quality": epochs,
        "recbole_cpu_seconds_estimated": theirs,
        "ratio_recbole_over_mtrec": _ratio(theirs, ours),
    }


def prepare_ml100k(work_dir: Path, seed: int = SEED, n_negatives: int = 4) -> Path:
    """ML-100k through the pipeline's own ingest/validate/split steps into
    `work_dir/processed` (all ratings kept: no k-core; `n_negatives` sampled
    negative exposures per positive, 0 = positives only, like RecBole's CE)."""
    from mtrec.config import DataConfig, SplitConfig, ValidateConfig
    from mtrec.data.ingest import ingest
    from mtrec.data.split import split_exposures
    from mtrec.data.validate import validate_exposures

    raw = work_dir / "raw" / "exposures.parquet"
    validated = work_dir / "validated" / "exposures.parquet"
    processed = work_dir / "processed"
    ingest(DataConfig(source="ml-100k"), raw)
    validate_exposures(
        raw, validated, work_dir / "reports" / "validation.json", ValidateConfig(k_core=0)
    )
    split_config = SplitConfig(method="leave_one_out", seed=seed, n_negatives=n_negatives)
    split_exposures(validated, processed, split_config)
    return processed


class GPUUtilisation:
    """Samples the GPU's utilisation (NVML, through torch) every `every` seconds
    while active; nothing on CPU or where NVML is missing."""

    def __init__(self, device, every: float = 0.2) -> None:
        import threading

        self.samples: list[float] = []
        self.every = every
        self.enabled = device.type == "cuda" and _nvml_works()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import torch

        while not self._stop.wait(self.every):
            self.samples.append(float(torch.cuda.utilization()))

    def __enter__(self) -> GPUUtilisation:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        import numpy as np

        return {
            "mean_percent": float(np.mean(self.samples)),
            "median_percent": float(np.median(self.samples)),
            "samples": len(self.samples),
        }


def _nvml_works() -> bool:
    import torch

    try:
        torch.cuda.utilization()
    except Exception:  # pynvml missing or NVML unavailable: no samples, said in the JSON
        return False
    return True


class TestCurve:
    """Report-only test NDCG@10 of every epoch's model (never used to choose):
    after each epoch, loads the epoch's checkpoint and scores the test split.
    Its own time is kept apart, so the run's clock can leave it out."""

    def __init__(self, seed_dir: Path, data, evaluate_config) -> None:
        self.seed_dir = seed_dir
        self.data = data
        self.evaluate_config = evaluate_config
        self.points: list[dict[str, float]] = []
        self.seconds = 0.0  # wall and process CPU seconds spent here so far
        self.cpu_seconds = 0.0
        self._model = None

    def __call__(self, epoch: int, record: dict[str, float]) -> None:
        from mtrec.evaluation.evaluate import split_metrics
        from mtrec.models import load_model
        from mtrec.training.loop import CHECKPOINT_FILE, load_checkpoint

        started, cpu_started = time.perf_counter(), time.process_time()
        if self._model is None:
            self._model = load_model(self.seed_dir / "initial", device=self.evaluate_config.device)
        state = load_checkpoint(self.seed_dir / CHECKPOINT_FILE)["model"]
        self._model.load_state_dict(state)
        test = split_metrics(self._model, self.data, "test", self.evaluate_config)
        self.points.append({"epoch": epoch, "test_ndcg_at_10": test["NDCG@10"]})
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - cpu_started


def clock_without_curve(ends: list[float], start: float, curve_spent: list[float]) -> list[float]:
    """Seconds from `start` to each epoch's end, less the test curve's time before
    that end. `curve_spent[i]`: the curve's cumulative time after epoch i + 1's
    callback; epoch i + 1's end is read before its own curve runs, so only the
    curves of the earlier epochs fall inside."""
    before = [0.0, *curve_spent[:-1]] if curve_spent else [0.0] * len(ends)
    return [end - start - spent for end, spent in zip(ends, before, strict=True)]


def time_to_quality(
    epoch_clock: list[float],
    curve: list[dict[str, float]],
    target: float,
    cpu_clock: list[float] | None = None,
    key: str = "test_ndcg_at_10",
) -> dict[str, Any]:
    """The first epoch whose `key` (test NDCG@10 by default) reaches `target`, and
    the run's wall (and process CPU) seconds up to its end (`epoch_clock[i]`: from
    the start of training to the end of epoch i + 1, the test curve's own time left out)."""
    cpu_clock = cpu_clock if cpu_clock is not None else [None] * len(epoch_clock)
    for point, seconds, cpu in zip(curve, epoch_clock, cpu_clock, strict=True):
        if point[key] >= target:
            return {"target": target, "epoch": point["epoch"], "seconds": seconds} | (
                {"cpu_seconds": cpu} if cpu is not None else {}
            )
    return {"target": target, "epoch": None, "seconds": None}


def run_mtrec(
    model_name: str,
    epochs: int,
    threads: int,
    seed: int = SEED,
    n_negatives: int = 4,
    device_name: str = "auto",
    precision: str = "fp32",
    test_curve: bool = False,
    reference_test_ndcg: float | None = None,
    partial_out: Path | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Train our backbone `model_name` under the shared protocol; measurements.
    With `test_curve`, also the report-only test NDCG@10 after every epoch and
    the training time to `reference_test_ndcg` (the peer's converged figure).
    `partial_out`: rewritten after every epoch with the epochs so far."""
    import numpy as np
    import torch

    from mtrec.config import EvaluateConfig, RecommenderConfig, TrainConfig
    from mtrec.data.processed import load_processed
    from mtrec.device import resolve_device
    from mtrec.evaluation.evaluate import split_metrics
    from mtrec.models import count_parameters, load_model
    from mtrec.training import train_recommender

    torch.set_num_threads(threads)
    backbone = MODELS[model_name]
    with tempfile.TemporaryDirectory(prefix="mtrec-bench-") as scratch:
        work_dir = Path(scratch)
        started = time.perf_counter()
        processed = prepare_ml100k(work_dir, seed, n_negatives)
        data_seconds = time.perf_counter() - started
        config = RecommenderConfig(
            backbones=(backbone,),
            guidances=("none",),
            seeds=(seed,),
            train=TrainConfig(
                max_epochs=epochs,
                monitor="NDCG@10",
                patience=RECBOLE_STOPPING_STEP + 1,
                catalogue_ce_weight=1.0,
                num_threads=threads,
                resume=False,
                device=device_name,
                precision=precision,
                **({} if learning_rate is None else {"learning_rate": learning_rate}),
                **({} if batch_size is None else {"batch_size": batch_size}),
            ),
        )
        device = resolve_device(device_name)
        evaluate_config = EvaluateConfig(ks=(10,), device=device_name)
        seed_dir = work_dir / "models" / f"seed_{seed}"
        data = load_processed(processed)
        curve = TestCurve(seed_dir, data, evaluate_config) if test_curve else None
        epoch_ends: list[float] = []
        cpu_epoch_ends: list[float] = []
        curve_times: list[float] = []  # the test curve's seconds so far, per epoch end
        curve_cpu: list[float] = []  # and its CPU seconds
        progress: list[dict[str, Any]] = []

        def on_epoch(epoch: int, record: dict[str, float]) -> None:
            epoch_ends.append(time.perf_counter())
            cpu_epoch_ends.append(time.process_time())
            if curve is not None:
                curve(epoch, record)
                curve_times.append(curve.seconds)
                curve_cpu.append(curve.cpu_seconds)
            test = f" test NDCG@10 {curve.points[-1]['test_ndcg_at_10']:.4f}" if curve else ""
            print(
                f"[mtrec {model_name}] epoch {epoch}: train {record['train_seconds']:.1f}s "
                f"loss {record['train_loss']:.4f} valid NDCG@10 {record['valid_NDCG@10']:.4f}"
                f"{test}",
                file=sys.stderr,
                flush=True,
            )
            progress.append(
                {
                    "epoch": epoch,
                    "train_seconds": record["train_seconds"],
                    # from the start of training, the test curve's own time left out
                    "wall_seconds": clock_without_curve(epoch_ends, fit_started, curve_times)[-1],
                    "cpu_seconds": clock_without_curve(cpu_epoch_ends, cpu_fit_started, curve_cpu)[
                        -1
                    ],
                    "valid_ndcg_at_10": record["valid_NDCG@10"],
                    "test_ndcg_at_10": curve.points[-1]["test_ndcg_at_10"] if curve else None,
                }
            )
            if partial_out is not None:  # evidence that survives a run cut off by a time limit
                partial = {"complete": False, "model": model_name, "device": str(device)}
                partial |= {"precision": precision, "epochs": progress}
                partial_out.write_text(json.dumps(partial, indent=2) + "\n")

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fit_started, cpu_fit_started = time.perf_counter(), time.process_time()
        with GPUUtilisation(device) as utilisation:
            summary = train_recommender(
                config, backbone, "none", processed, work_dir / "models", callbacks=[on_epoch]
            )
        fit_seconds = time.perf_counter() - fit_started - (curve.seconds if curve else 0.0)
        seed_summary = summary["seeds"][str(seed)]
        # Seconds per epoch are in timing.csv, beside metrics.csv (kept out of DVC's hashes).
        metrics_csv = Path(seed_summary["metrics_csv"])
        history = [
            record | timing
            for record, timing in zip(
                _read_history(metrics_csv),
                _read_history(metrics_csv.with_name("timing.csv")),
                strict=True,
            )
        ]
        model = load_model(seed_summary["model_dir"], device=device)
        test = split_metrics(model, data, "test", evaluate_config)
        valid = split_metrics(model, data, "valid", evaluate_config)
        train_seconds = [float(r["train_seconds"]) for r in history]
        # Wall and process CPU seconds (training, validation, checkpoints) from the
        # start of training to each epoch's end, the report-only test curve left out;
        # CPU time is less sensitive to other jobs on a shared machine than wall time.
        epoch_clock = clock_without_curve(epoch_ends, fit_started, curve_times)
        cpu_clock = clock_without_curve(cpu_epoch_ends, cpu_fit_started, curve_cpu)
        wall = np.diff([0.0, *epoch_clock]).tolist()
        cpu_epoch = np.diff([0.0, *cpu_clock])
        best_epoch = int(seed_summary["best_epoch"])
        return {
            "side": "mtrec",
            "model": model_name,
            "backbone_config": config.backbone_config(backbone).model_dump(mode="json"),
            "train_config": config.train.model_dump(mode="json"),
            "n_parameters": count_parameters(model),
            "dataset": "ml-100k (RecBole's copy, all ratings kept)",
            "n_users": data.n_users,
            "n_items": data.n_items,
            "n_train_exposures": len(data.train),
            "sampled_negatives_per_positive": n_negatives,
            "epochs_requested": epochs,
            "epochs_run": int(seed_summary["epochs_run"]),
            "stopped_early": int(seed_summary["epochs_run"]) < epochs,
            "best_epoch": best_epoch,
            "precision": precision,
            "seconds_per_epoch": float(np.mean(train_seconds)),
            # Wall seconds from the start of training: to the end of the epoch chosen
            # on validation, and to early stop (training, validation, checkpoints).
            "seconds_to_best_epoch": epoch_clock[best_epoch - 1],
            "seconds_to_early_stop": fit_seconds,
            "cpu_seconds_to_best_epoch": cpu_clock[best_epoch - 1],
            "cpu_seconds_to_early_stop": cpu_clock[-1],
            "gpu_utilisation": utilisation.summary(),
            "test_curve": curve.points if curve else None,
            "time_to_reference_test_ndcg": (
                time_to_quality(epoch_clock, curve.points, reference_test_ndcg, cpu_clock)
                if curve and reference_test_ndcg is not None
                else None
            ),
            # The criterion a training recipe may be chosen by (validation only).
            "time_to_reference_valid_ndcg": time_to_quality(
                epoch_clock,
                progress,
                RECBOLE_VALID_NDCG[model_name],
                cpu_clock,
                key="valid_ndcg_at_10",
            ),
            "train_seconds": train_seconds,
            # Validation, checkpoint and best-model writing per epoch.
            "other_seconds_per_epoch": [w - t for w, t in zip(wall, train_seconds, strict=False)],
            "cpu_seconds_per_epoch_incl_validation": float(np.mean(cpu_epoch)),
            "setup_seconds": data_seconds,
            "train_losses": [float(r["train_loss"]) for r in history],
            "valid_ndcg_at_10_by_epoch": [float(r["valid_NDCG@10"]) for r in history],
            "valid_ndcg_at_10": valid["NDCG@10"],
            "valid_recall_at_10": valid["HR@10"],
            "test_ndcg_at_10": test["NDCG@10"],
            "test_recall_at_10": test["HR@10"],
            "test_auc": test["AUC"],
            "peak_rss_mib": peak_rss_mib(),
            "peak_gpu_mib": (
                torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
            ),
            **machine_info(threads, str(device)),
        }


def _read_history(metrics_csv: Path) -> list[dict[str, str]]:
    import csv

    with metrics_csv.open() as fh:
        return list(csv.DictReader(fh))


def compare_sides(recbole: dict[str, Any], mtrec: dict[str, Any]) -> dict[str, Any]:
    """The comparison of one model: speed ratio, memory, and quality when both
    sides converged (early-stopped within their epoch budget). A ratio > 1
    means RecBole takes longer per epoch."""
    for side, result in (("recbole", recbole), ("mtrec", mtrec)):
        if result.get("model") != recbole.get("model"):
            raise ValueError(f"{side} result is for {result.get('model')!r}, not the same model")
        if result.get("torch_threads") != recbole.get("torch_threads"):
            raise ValueError("sides ran with different torch thread counts")
    converged = bool(recbole["stopped_early"] and mtrec["stopped_early"])
    seconds = {"recbole": recbole["seconds_per_epoch"], "mtrec": mtrec["seconds_per_epoch"]}
    rss = {"recbole": recbole["peak_rss_mib"], "mtrec": mtrec["peak_rss_mib"]}
    cpu_key = "cpu_seconds_per_epoch_incl_validation"
    cpu = {"recbole": recbole.get(cpu_key), "mtrec": mtrec.get(cpu_key)}
    quality_keys = ("test_ndcg_at_10", "test_recall_at_10", "valid_ndcg_at_10")
    return {
        "model": recbole["model"],
        "torch_threads": recbole["torch_threads"],
        "device": recbole["device"],
        "epochs_run": {"recbole": recbole["epochs_run"], "mtrec": mtrec["epochs_run"]},
        "seconds_per_epoch": seconds,
        "speedup_recbole_over_mtrec": _ratio(seconds["recbole"], seconds["mtrec"]),
        "cpu_seconds_per_epoch_incl_validation": cpu,
        "cpu_ratio_recbole_over_mtrec": _ratio(cpu["recbole"], cpu["mtrec"]),
        "peak_rss_mib": rss,
        "peak_rss_ratio_recbole_over_mtrec": _ratio(rss["recbole"], rss["mtrec"]),
        "converged": converged,
        "quality": {key: {"recbole": recbole[key], "mtrec": mtrec[key]} for key in quality_keys}
        if converged
        else None,
        "quality_after_budget": {
            key: {"recbole": recbole[key], "mtrec": mtrec[key]} for key in quality_keys
        },
    }


def _ratio(numerator: float | None, denominator: float | None) -> float:
    if numerator is None or not denominator:
        return float("nan")
    return float(numerator) / float(denominator)


def _run_side(command: list[str], out: Path, env: dict[str, str]) -> dict[str, Any]:
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, env=env)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--epochs", type=int, default=2, help="max epochs per side (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument(
        "--side",
        choices=("both", "mtrec"),
        default="both",
        help="'mtrec': run only our side for --models[0] into --out (used by 'both')",
    )
    parser.add_argument(
        "--n-negatives",
        type=int,
        default=4,
        help="mtrec side: sampled negatives per positive (0: positives only)",
    )
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="mtrec side"
    )
    parser.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="mtrec side's training"
    )
    parser.add_argument(
        "--test-curve",
        action="store_true",
        help="mtrec side: report-only test NDCG@10 after every epoch, and the training "
        "time to the peer's converged test NDCG@10 (never used to choose anything)",
    )
    parser.add_argument(
        "--reference-test-ndcg",
        type=float,
        default=None,
        help="the test NDCG@10 that --test-curve times against (default: RecBole's "
        "converged figure on this protocol, BENCHMARKS.md)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="mtrec side (default: TrainConfig's)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="mtrec side, windows (TrainConfig's)"
    )
    parser.add_argument(
        "--tag", default="", help="suffix of the per-side JSON names (e.g. _cuda_bf16)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--recbole-result",
        type=Path,
        action="append",
        default=[],
        help="reuse an existing bench_recbole.py JSON instead of rerunning RecBole "
        "(with --side=mtrec --test-curve: the CPU time to RecBole's quality, compared)",
    )
    args = parser.parse_args(argv)

    if args.side == "mtrec":
        model = args.models[0]
        out = args.out or RESULTS_DIR / f"mtrec_{model}_{args.epochs}ep{args.tag}.json"
        recbole = json.loads(args.recbole_result[0].read_text()) if args.recbole_result else None
        if recbole is not None:  # said before training, not after
            try:
                check_same_setup(recbole, model, args.threads)
            except ValueError as error:
                raise SystemExit(f"{args.recbole_result[0]}: {error}") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        result = run_mtrec(
            model,
            args.epochs,
            args.threads,
            n_negatives=args.n_negatives,
            device_name=args.device,
            precision=args.precision,
            test_curve=args.test_curve,
            reference_test_ndcg=args.reference_test_ndcg or RECBOLE_TEST_NDCG[model],
            partial_out=out.with_name(out.stem + ".partial.json"),
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
        )
        out.with_name(out.stem + ".partial.json").unlink(missing_ok=True)
        if recbole is not None:  # CPU time to RecBole's quality, ours against theirs
            result["cpu_to_quality_vs_recbole"] = cpu_to_quality_against_recbole(result, recbole)
            result["recbole_result"] = str(args.recbole_result[0])
        out.write_text(json.dumps(result, indent=2) + "\n")
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    reused = {json.loads(p.read_text())["model"]: p for p in args.recbole_result}
    comparisons = []
    commands: dict[str, list[str]] = {}
    sides_dir = args.out.parent if args.out else RESULTS_DIR
    for model in args.models:
        recbole_out = sides_dir / f"recbole_{model}_{args.epochs}ep{args.tag}.json"
        mtrec_out = sides_dir / f"mtrec_{model}_{args.epochs}ep{args.tag}.json"
        recbole_cmd = [
            sys.executable,
            str(HERE / "bench_recbole.py"),
            f"--model={model}",
            f"--epochs={args.epochs}",
            f"--threads={args.threads}",
            f"--stopping-step={RECBOLE_STOPPING_STEP}",
            f"--out={recbole_out}",
        ]
        mtrec_cmd = [
            sys.executable,
            str(HERE / "bench_training.py"),
            "--side=mtrec",
            f"--models={model}",
            f"--epochs={args.epochs}",
            f"--threads={args.threads}",
            f"--n-negatives={args.n_negatives}",
            f"--device={args.device}",
            f"--precision={args.precision}",
            f"--out={mtrec_out}",
        ]
        if args.test_curve:
            mtrec_cmd.append("--test-curve")
        if args.reference_test_ndcg is not None:
            mtrec_cmd.append(f"--reference-test-ndcg={args.reference_test_ndcg}")
        for flag, value in (("learning-rate", args.learning_rate), ("batch-size", args.batch_size)):
            if value is not None:
                mtrec_cmd.append(f"--{flag}={value}")
        if model in reused:
            recbole = json.loads(reused[model].read_text())
            if recbole["torch_threads"] != args.threads:
                raise SystemExit(f"{reused[model]} ran with other thread count")
            commands[f"recbole_{model}"] = [f"(reused {reused[model]})"]
        else:
            recbole = _run_side(recbole_cmd, recbole_out, env)
            commands[f"recbole_{model}"] = recbole_cmd
        mtrec = _run_side(mtrec_cmd, mtrec_out, env)
        commands[f"mtrec_{model}"] = mtrec_cmd
        comparisons.append(compare_sides(recbole, mtrec))
    report = {
        "benchmark": "seconds per training epoch, ML-100k, RecBole 1.2.1 vs mtrec",
        "epochs": args.epochs,
        "threads": args.threads,
        "commands": {name: " ".join(cmd) for name, cmd in commands.items()},
        "comparisons": comparisons,
    }
    out = args.out or RESULTS_DIR / f"compare_{args.epochs}ep_{args.threads}threads{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for row in comparisons:
        print(
            f"{row['model']}: {row['seconds_per_epoch']['recbole']:.1f} s/epoch (RecBole) vs "
            f"{row['seconds_per_epoch']['mtrec']:.1f} s/epoch (mtrec): "
            f"{row['speedup_recbole_over_mtrec']:.1f}x; peak RSS "
            f"{row['peak_rss_mib']['recbole']:.0f} vs {row['peak_rss_mib']['mtrec']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
