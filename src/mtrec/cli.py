"""The `mtrec` command: one subcommand per pipeline step (what dvc.yaml runs).

Each subcommand reads params.yaml once into typed configs and calls the one
library function that implements the step; no step logic lives here.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path

import typer

from mtrec.config import Params, ParamsError, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

# Threads of every numeric library in a stage. Results depend on it (a reduction
# split over 2 threads adds in another order than over 1), so it is fixed rather
# than left to the machine's core count; MTREC_NUM_THREADS overrides it at the
# price of other bits than the committed dvc.lock.
STAGE_THREADS = 2
# x86 CPUs pick vector kernels by instruction set (AVX-512 vs AVX2 sum in another
# order, and numpy's exp/log differ): pin every library to the AVX2 kernels that
# any x86 machine of the last decade has, so two machines compute the same bits.
X86_REPRODUCIBLE_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels
    "MKL_CBWR": "AVX2",  # torch's BLAS: MKL's conditional numerical reproducibility
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's BLAS
    # numpy's own SIMD loops (names of numpy >= 2.3 and older ones; unknown ones are ignored)
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX "
    "AVX512_CLX AVX512_CNL AVX512_KNL AVX512_KNM",
}
# oneDNN (torch's CPU kernels) caches a primitive, with its scratch memory, per
# input shape (1024 of them by default). The reward model's batches vary in shape
# (rows are grouped by history), so that cache grew the reward stages' resident
# memory with every batch, at no CPU gain: benchmarks/results/scale_curve/
# users_10000_reward_stages_onednn_cache_{1024,0}.json. A user's setting wins.
ONEDNN_PRIMITIVE_CACHE = "0"


@app.callback()
def reproducible_numerics() -> None:
    """Runs before every command, before numpy or torch are imported (the commands
    import them lazily): the same thread count and vector kernels on every machine,
    so a stage's outputs, and dvc.lock, are bit-identical across runs and machines."""
    threads = os.environ.get("MTREC_NUM_THREADS", str(STAGE_THREADS))
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = threads
    if platform.machine().lower() in {"x86_64", "amd64"}:
        for name, value in X86_REPRODUCIBLE_KERNELS.items():
            os.environ.setdefault(name, value)
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_PRIMITIVE_CACHE)
    import sys

    if "torch" in sys.modules:  # imported already (e.g. the CLI called in-process)
        sys.modules["torch"].set_num_threads(int(threads))


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _params(path: Path) -> Params:
    """The typed params; a bad file ends the command with its one-line message."""
    try:
        return load_params(path)
    except ParamsError as exc:
        _fail(f"invalid params: {exc}", code=2)


def _params_file(ctx: typer.Context, param: typer.CallbackParam, value: Path) -> Path:
    """A params file named on the command line must exist: running on the
    built-in defaults instead would look like success. (Without -p, a missing
    ./params.yaml still means the defaults.)"""
    # By name: typer may bring its own copy of click's ParameterSource enum.
    source = ctx.get_parameter_source(param.name)
    if source is not None and source.name != "DEFAULT" and not value.is_file():
        _fail(f"params file {value} not found (--params/-p)", 2)
    return value


PARAMS = typer.Option(
    Path("params.yaml"), "--params", "-p", help="params.yaml to read", callback=_params_file
)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def ingest(params: Path = PARAMS) -> None:
    """Read the configured data source into data/raw/exposures.parquet."""
    from mtrec.data.ingest import ingest as run
    from mtrec.data.sources import SourceError

    _setup_logging()
    p = _params(params)
    try:
        summary = run(p.data, p.paths.raw)
    except SourceError as exc:
        _fail(f"ingest failed: {exc}")
    typer.echo(f"ingest: {summary['rows']} rows from {summary['source']} -> {p.paths.raw}")
    if summary["extra_columns"]:
        typer.echo(f"ingest: kept, not used by mtrec: {summary['extra_columns']}")
    if summary["columns_not_read"]:
        typer.echo(f"ingest: fields not read: {summary['columns_not_read']}")
    if not summary["has_logged_negatives"]:
        typer.echo("ingest: no logged negatives: `split` samples split.n_negatives per positive")


@app.command()
def validate(params: Path = PARAMS) -> None:
    """Validate the raw log (pandera), k-core filter it, write data/validated/."""
    from mtrec.data.schema import DataValidationError
    from mtrec.data.stage_input import StageInputError
    from mtrec.data.validate import validate_exposures

    _setup_logging()
    p = _params(params)
    report_path = p.paths.reports / "validation.json"
    try:
        report = validate_exposures(
            p.paths.raw, p.paths.validated, report_path, p.validate_, p.paths.quarantine
        )
    except StageInputError as exc:
        _fail(f"validate failed: {exc}")
    except DataValidationError as exc:
        _fail(f"{exc}\nfull report: {report_path}")
    typer.echo(report.message())
    typer.echo(f"k-core: {json.dumps(report.notes['k_core'])}")


@app.command()
def split(params: Path = PARAMS) -> None:
    """Add negative exposures where none were logged and split train/valid/test."""
    from mtrec.data.split import SplitError, split_exposures
    from mtrec.data.stage_input import StageInputError

    _setup_logging()
    p = _params(params)
    try:
        meta = split_exposures(p.paths.validated, p.paths.processed, p.split)
    except (StageInputError, SplitError) as exc:
        _fail(f"split failed: {exc}")
    if meta.get("negatives_note"):
        typer.echo(f"split: {meta['negatives_note']}")
    typer.echo(f"split: {json.dumps(meta['rows'])} -> {p.paths.processed}")


BACKBONES = typer.Option(
    None,
    "--backbone",
    help="backbone(s) of the reward models; default: every recommender.backbones",
)


def _reward_backbones(p, backbones: list[str] | None) -> list[str]:
    """The backbones whose reward models a step handles: the ones asked for, else
    the recommender matrix's (one reward model per backbone it guides)."""
    if backbones:
        return list(backbones)
    return list(p.recommender.backbones)


@app.command("train-reward")
def train_reward_command(backbone: list[str] = BACKBONES, params: Path = PARAMS) -> None:
    """Train the QR-IQL mental reward model (and its -IRL ablation) of each backbone
    into models/reward/<backbone>/{qnetwork,irl}."""
    from mtrec.reward.train import reward_runs, train_reward

    _setup_logging()
    p = _params(params)
    config = p.reward
    for kind in _reward_backbones(p, backbone):
        for out_dir, run_config in reward_runs(config, p.paths.models, kind).items():
            paths = train_reward(run_config, p.paths.processed, out_dir)
            summary = json.loads(paths["summary"].read_text())
            seconds = json.loads(paths["timing"].read_text())["train_seconds"]
            monitor = summary["monitor"]
            best = summary["history"][summary["best_epoch"] - 1]
            typer.echo(
                f"reward {kind}/{out_dir.name}: best epoch {best['epoch']} of "
                f"{summary['epochs']} by {monitor} {best[monitor]:.4f}, {seconds:.0f} s"
            )


@app.command("read-out-rewards")
def read_out_rewards_command(backbone: list[str] = BACKBONES, params: Path = PARAMS) -> None:
    """Rewards of every exposure from each backbone's reward model ->
    <recommender.rewards_path>/<backbone>.parquet, reports/reward/<backbone>/."""
    from mtrec.reward import reward_model_dir
    from mtrec.reward.readout import read_out_rewards, saved_reward_config, with_readout_settings

    _setup_logging()
    p = _params(params)
    current = p.reward
    recommender = p.recommender
    if recommender.rewards_path is None:
        _fail("read-out-rewards: set recommender.rewards_path (where the guided candidates read)")
    kinds = _reward_backbones(p, backbone)
    if recommender.rewards_path.suffix == ".parquet" and len(kinds) > 1:
        _fail(
            f"read-out-rewards: {len(kinds)} backbones would share the one table "
            f"{recommender.rewards_path}: make recommender.rewards_path a folder"
        )
    for kind in kinds:
        model_dir = reward_model_dir(p.paths.models, kind)
        irl = reward_model_dir(p.paths.models, kind, ablation=True)
        paths = read_out_rewards(
            model_dir,
            p.paths.processed,
            recommender.rewards_table(kind),
            p.paths.reports / "reward" / kind,
            # The read-out keys (cvar_level, ...) come from params.yaml: changing them
            # reruns this stage only, not the reward model's training.
            config=with_readout_settings(saved_reward_config(model_dir), current),
            irl_model_dir=irl if (irl / "config.json").exists() else None,
        )
        recovery = json.loads(paths["summary"].read_text())["recovery"]["test"]
        shown = {k: round(v, 4) for k, v in recovery.items() if k.startswith("auc_")}
        typer.echo(
            f"rewards {kind} -> {paths['rewards']}; test recovery (evaluation only): {shown}"
        )


@app.command("train-recommender")
def train_recommender_command(
    backbone: str = typer.Option(..., help="sasrec | gru4rec | din"),
    guidance: str = typer.Option("none", help="training loss: none | mtrec | ... (registry)"),
    seed: list[int] = typer.Option(None, help="seed(s) to train; default recommender.seeds"),
    models: Path = typer.Option(None, help="candidates folder; default paths.candidates"),
    params: Path = PARAMS,
    stop_after_epochs: int = typer.Option(
        None,
        min=1,
        envvar="MTREC_STOP_AFTER_EPOCHS",
        help="testing resume: stop (as if killed) after this many epochs "
        "(also from $MTREC_STOP_AFTER_EPOCHS, to interrupt a `dvc repro`)",
    ),
    progress: bool = typer.Option(True, help="show progress bars"),
) -> None:
    """Train one candidate <backbone>-<guidance> for each seed into <models>/<name>/.

    With recommender.train.nproc > 1 (the backbone's recipe), this command starts
    itself under torchrun with that many data-parallel processes."""
    from mtrec.training.distributed import finish, init_from_env, launched_by_torchrun
    from mtrec.training.loop import TrainingStopped
    from mtrec.training.recommender import candidate_name, train_recommender

    _setup_logging()
    p = _params(params)
    config = p.recommender
    nproc = config.train_for(backbone).nproc
    if nproc > 1 and not launched_by_torchrun():
        import subprocess
        import sys

        args = ["--backbone", backbone, "--guidance", guidance, "--params", str(params)]
        args += [f"--seed={s}" for s in seed or []]
        args += ["--models", str(models)] if models else []
        args += [f"--stop-after-epochs={stop_after_epochs}"] if stop_after_epochs else []
        args += ["--progress" if progress else "--no-progress"]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        torchrun += [f"--nproc_per_node={nproc}", "-m", "mtrec.cli", "train-recommender"]
        raise typer.Exit(subprocess.call([*torchrun, *args]))
    world = init_from_env()
    name = candidate_name(backbone, guidance)
    out_dir = (models or p.paths.candidates) / name
    try:
        summary = train_recommender(
            config,
            backbone,
            guidance,
            p.paths.processed,
            out_dir,
            seeds=seed or None,
            stop_after_epochs=stop_after_epochs,
            progress=progress,
            # Outside the stage's outputs, which DVC deletes before rerunning the stage:
            # an interrupted `dvc repro` resumes from here.
            checkpoint_root=p.paths.checkpoints,
        )
    except TrainingStopped as exc:
        _fail(f"{name}: {exc}; run again to resume from its checkpoint", code=3)
    finally:
        finish(world)
    if not world.is_main:
        return
    monitor = summary["monitor"]
    for run_seed, result in summary["seeds"].items():
        valid = result["valid"].get(monitor)
        typer.echo(
            f"{name} seed {run_seed}: best epoch {result['best_epoch']}, "
            f"valid {monitor} {valid}, {result['seconds_per_epoch']:.1f} s/epoch"
        )


@app.command("tune")
def tune_command(
    backbone: str = typer.Option(..., help="sasrec | gru4rec | din"),
    guidance: str = typer.Option(..., help="guidance whose option is tuned, e.g. mtrec"),
    option: str = typer.Option("beta", help="the guidance option to tune"),
    value: list[str] = typer.Option(
        None, "--value", help="a value to try (repeatable; YAML): a grid, every value once"
    ),
    low: float = typer.Option(None, help="lower end of a range searched by Optuna's TPE"),
    high: float = typer.Option(None, help="upper end of that range"),
    trials: int = typer.Option(8, help="trials of the range search"),
    log_scale: bool = typer.Option(True, "--log/--linear", help="search the range on a log scale"),
    criterion: str = typer.Option("NDCG@10", help="validation metric to maximise"),
    seed: list[int] = typer.Option(None, help="seed(s) per value; default recommender.seeds"),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="an MLflow run per trial"),
    params: Path = PARAMS,
) -> None:
    """Tune one guidance option on validation only (Optuna) ->
    <models>/tuning/<name>/tuning.json and optuna.db (a rerun resumes the study)."""
    import yaml

    from mtrec.lifecycle.tracking import resolve_tracking_uri
    from mtrec.training.tune import SearchRange, tune_option

    _setup_logging()
    p = _params(params)
    if bool(value) == (low is not None or high is not None):
        _fail("give either --value (a grid) or --low and --high (a range), not both", 2)
    search = None
    if not value:
        if low is None or high is None:
            _fail("a range needs both --low and --high", 2)
        try:
            search = SearchRange(low, high, trials, log=log_scale)
        except ValueError as exc:
            _fail(f"bad range: {exc}", 2)
    out_dir = p.paths.models / "tuning" / f"{backbone}-{guidance}-{option}"
    report = tune_option(
        p.recommender,
        backbone,
        guidance,
        option,
        [yaml.safe_load(v) for v in value] if value else None,
        p.paths.processed,
        out_dir,
        criterion,
        seeds=seed or None,
        search=search,
        tracking_uri=resolve_tracking_uri(p.tracking, Path.cwd()) if mlflow else None,
    )
    for trial in report["trials"]:
        typer.echo(
            f"{option}={trial[option]}: valid {criterion} {trial['valid_mean'][criterion]:.4f}"
        )
    typer.echo(f"best {option}={report['best']} ({out_dir / 'tuning.json'})")


@app.command("evaluate")
def evaluate_command(
    models: Path = typer.Option(None, help="candidates folder; default paths.candidates"),
    params: Path = PARAMS,
) -> None:
    """Score every trained candidate (<models>/*/train_summary.json) on the test
    split -> reports/metrics.json, reports/candidates/, reports/plots/curves/."""
    from mtrec.evaluation.evaluate import evaluate_candidates

    _setup_logging()
    p = _params(params)
    config = p.evaluate
    models = models or p.paths.candidates
    names = None
    if "recommender" in p.model_fields_set:
        # Only the matrix params.yaml asks for: a candidate left on disk by an
        # earlier matrix must not reach the gate.
        matrix = p.recommender
        names = [f"{b}-{g}" for b in matrix.backbones for g in matrix.guidances]
    report = evaluate_candidates(config, p.paths.processed, models, p.paths.reports, names)
    for name, entry in report["candidates"].items():
        mean, std = entry["mean"], entry["std"]
        typer.echo(
            f"{name}: NDCG@10 {mean['NDCG@10']:.4f} ± {std['NDCG@10'] or 0:.4f}, "
            f"AUC {mean['AUC']:.4f}, NDCG_p@10 {mean['NDCG_p@10']}"
        )


@app.command()
def gate(params: Path = PARAMS) -> None:
    """Track candidates in MLflow, apply the gate on validation evidence, set registry aliases."""
    from mtrec.lifecycle.steps import run_gate

    _setup_logging()
    p = _params(params)
    decision = run_gate(
        p.paths.reports / "metrics.json",
        p.paths.reports / "gate.json",
        p.gate,
        p.tracking,
        Path.cwd(),
        p.paths.processed,
        p.paths.models,
        Path("dvc.lock"),
        p.evaluate,
    )
    typer.echo(f"gate: {decision['action']}: {decision['reason']}")


@app.command()
def package(params: Path = PARAMS) -> None:
    """Import the registry's champion as a Bento model and build the Bento."""
    from mtrec.lifecycle.package import package_champion

    _setup_logging()
    p = _params(params)
    try:
        summary = package_champion(
            p.tracking,
            p.package,
            Path.cwd(),
            p.paths.reports / "package.json",
        )
    except LookupError as exc:
        # No champion yet (the gate promoted nothing): nothing to package, and
        # that is a decision, not a failure of the pipeline.
        out = p.paths.reports / "package.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"skipped": str(exc)}, indent=2) + "\n")
        typer.echo(f"package: skipped: {exc}")
        return
    typer.echo(f"package: built {summary['bento']} from {summary['candidate']}")


@app.command("simulate-online")
def simulate_online_command(
    params: Path = PARAMS,
    model: list[str] = typer.Option(
        [], "--model", "-m", help="NAME=MODEL_DIR of a trained recommender (repeatable)"
    ),
    baseline: str = typer.Option("popularity", help="the policy the others are compared with"),
) -> None:
    """Online A/B in the simulator (data.simulator, section `online`) -> reports/online.json."""
    _setup_logging()
    p = _params(params)
    out_path = p.paths.reports / "online.json"
    if p.data.source != "synthetic":
        # Only the simulator knows users' true reward; say so instead of faking a number.
        out_path.parent.mkdir(parents=True, exist_ok=True)
        reason = f"online evaluation needs data.source: synthetic (got {p.data.source!r})"
        out_path.write_text(json.dumps({"skipped": reason}, indent=2) + "\n")
        typer.echo(f"simulate-online: skipped: {reason}")
        return
    model_dirs = {}
    for entry in model:
        name, sep, path = entry.partition("=")
        if not sep or not name or not path:
            _fail(f"--model expects NAME=MODEL_DIR, got {entry!r}")
        model_dirs[name] = Path(path)
    metrics_path = p.paths.reports / "metrics.json"
    if not model_dirs and metrics_path.exists():
        # Default: every evaluated candidate, its first seed's chosen checkpoint.
        candidates = json.loads(metrics_path.read_text())["candidates"]
        for name, entry in candidates.items():
            seeds = entry.get("model_dirs") or {}
            if seeds:
                model_dirs[name] = Path(seeds[sorted(seeds, key=int)[0]])
    # Imported only now: a skipped stage (every real-data job) need not load the
    # simulator, torch and scipy (~1.8 s).
    from mtrec.simulator.steps import online_evaluation

    report = online_evaluation(
        p.data.simulator,
        p.online,
        model_dirs,
        out_path,
        baseline,
    )
    for name, summary in report["policies"].items():
        probe = report["responsiveness"].get(name)
        typer.echo(
            f"{name}: viewing time {summary['viewing_time']['mean']:.2f}, "
            f"reward/shown {summary['reward_per_shown']['mean']:.3f}, "
            f"CTR {summary['ctr']['mean']:.3f}, "
            + (f"responsiveness {probe['responsiveness']:.3f}" if probe else "responsiveness n/a")
        )


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # `python -m mtrec.cli`, as torchrun starts it
    main()
