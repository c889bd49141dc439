"""The `mtrec` command: one subcommand per pipeline step (what dvc.yaml runs).

Each subcommand reads params.yaml once into typed configs and calls the one
library function that implements the step; no step logic lives here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from mtrec.config import load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

PARAMS = typer.Option(Path("params.yaml"), "--params", "-p", help="params.yaml to read")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@app.command()
def ingest(params: Path = PARAMS) -> None:
    """Read the configured data source into data/raw/exposures.parquet."""
    from mtrec.data.ingest import ingest as run
    from mtrec.data.sources import SourceError

    _setup_logging()
    p = load_params(params)
    try:
        summary = run(p.data, p.paths.raw)
    except SourceError as exc:
        _fail(f"ingest failed: {exc}")
    typer.echo(f"ingest: {summary['rows']} rows from {summary['source']} -> {p.paths.raw}")


@app.command()
def validate(params: Path = PARAMS) -> None:
    """Validate the raw log (pandera), k-core filter it, write data/validated/."""
    from mtrec.data.schema import DataValidationError
    from mtrec.data.validate import validate_exposures

    _setup_logging()
    p = load_params(params)
    report_path = p.paths.reports / "validation.json"
    try:
        report = validate_exposures(
            p.paths.raw, p.paths.validated, report_path, p.validate_, p.paths.quarantine
        )
    except DataValidationError as exc:
        _fail(f"{exc}\nfull report: {report_path}")
    typer.echo(report.message())
    typer.echo(f"k-core: {json.dumps(report.notes['k_core'])}")


@app.command()
def split(params: Path = PARAMS) -> None:
    """Add negative exposures where none were logged and split train/valid/test."""
    from mtrec.data.split import split_exposures

    _setup_logging()
    p = load_params(params)
    meta = split_exposures(p.paths.validated, p.paths.processed, p.split)
    typer.echo(f"split: {json.dumps(meta['rows'])} -> {p.paths.processed}")


BACKBONES = typer.Option(
    None,
    "--backbone",
    help="backbone(s) of the reward models; default: every recommender.backbones",
)


def _reward_backbones(p, backbones: list[str] | None) -> list[str]:
    """The backbones whose reward models a step handles: the ones asked for, else
    the recommender matrix's (one reward model per backbone it guides)."""
    from mtrec.config import RecommenderConfig

    if backbones:
        return list(backbones)
    return list(RecommenderConfig.model_validate(p.section("recommender")).backbones)


@app.command("train-reward")
def train_reward_command(backbone: list[str] = BACKBONES, params: Path = PARAMS) -> None:
    """Train the QR-IQL mental reward model (and its -IRL ablation) of each backbone
    into models/reward/<backbone>/{qnetwork,irl}."""
    from mtrec.config import RewardConfig
    from mtrec.reward.train import reward_runs, train_reward

    _setup_logging()
    p = load_params(params)
    config = RewardConfig.model_validate(p.section("reward"))
    for kind in _reward_backbones(p, backbone):
        for out_dir, run_config in reward_runs(config, p.paths.models, kind).items():
            paths = train_reward(run_config, p.paths.processed, out_dir)
            summary = json.loads(paths["summary"].read_text())
            monitor = summary["monitor"]
            best = summary["history"][summary["best_epoch"] - 1]
            typer.echo(
                f"reward {kind}/{out_dir.name}: best epoch {best['epoch']} of "
                f"{summary['epochs']} by {monitor} {best[monitor]:.4f}, "
                f"{summary['train_seconds']:.0f} s"
            )


@app.command("read-out-rewards")
def read_out_rewards_command(backbone: list[str] = BACKBONES, params: Path = PARAMS) -> None:
    """Rewards of every exposure from each backbone's reward model ->
    <recommender.rewards_path>/<backbone>.parquet, reports/reward/<backbone>/."""
    from mtrec.config import RecommenderConfig
    from mtrec.reward import reward_model_dir
    from mtrec.reward.readout import read_out_rewards

    _setup_logging()
    p = load_params(params)
    recommender = RecommenderConfig.model_validate(p.section("recommender"))
    if recommender.rewards_path is None:
        _fail("read-out-rewards: set recommender.rewards_path (where the guided candidates read)")
    kinds = _reward_backbones(p, backbone)
    if recommender.rewards_path.suffix == ".parquet" and len(kinds) > 1:
        _fail(
            f"read-out-rewards: {len(kinds)} backbones would share the one table "
            f"{recommender.rewards_path}: make recommender.rewards_path a folder"
        )
    for kind in kinds:
        irl = reward_model_dir(p.paths.models, kind, ablation=True)
        paths = read_out_rewards(
            reward_model_dir(p.paths.models, kind),
            p.paths.processed,
            recommender.rewards_table(kind),
            p.paths.reports / "reward" / kind,
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
) -> None:
    """Train one candidate <backbone>-<guidance> for each seed into <models>/<name>/."""
    from mtrec.config import RecommenderConfig
    from mtrec.training.recommender import candidate_name, train_recommender

    _setup_logging()
    p = load_params(params)
    config = RecommenderConfig.model_validate(p.section("recommender"))
    name = candidate_name(backbone, guidance)
    out_dir = (models or p.paths.candidates) / name
    summary = train_recommender(
        config, backbone, guidance, p.paths.processed, out_dir, seeds=seed or None
    )
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
    value: list[str] = typer.Option(..., "--value", help="a value to try (repeatable; YAML)"),
    criterion: str = typer.Option("NDCG@10", help="validation metric to maximise"),
    seed: list[int] = typer.Option(None, help="seed(s) per value; default recommender.seeds"),
    params: Path = PARAMS,
) -> None:
    """Tune one guidance option on validation only -> <models>/tuning/<name>/tuning.json."""
    import yaml

    from mtrec.config import RecommenderConfig
    from mtrec.training.tune import tune_option

    _setup_logging()
    p = load_params(params)
    config = RecommenderConfig.model_validate(p.section("recommender"))
    out_dir = p.paths.models / "tuning" / f"{backbone}-{guidance}-{option}"
    report = tune_option(
        config,
        backbone,
        guidance,
        option,
        [yaml.safe_load(v) for v in value],
        p.paths.processed,
        out_dir,
        criterion,
        seeds=seed or None,
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
    from mtrec.config import EvaluateConfig
    from mtrec.evaluation.evaluate import evaluate_candidates

    _setup_logging()
    p = load_params(params)
    config = EvaluateConfig.model_validate(p.section("evaluate"))
    models = models or p.paths.candidates
    names = None
    if p.section("recommender"):
        # Only the matrix params.yaml asks for: a candidate left on disk by an
        # earlier matrix must not reach the gate.
        from mtrec.config import RecommenderConfig

        matrix = RecommenderConfig.model_validate(p.section("recommender"))
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
    """Track candidates in MLflow, apply the offline-metric gate, set registry aliases."""
    from mtrec.config import GateConfig, TrackingConfig
    from mtrec.lifecycle.steps import run_gate

    _setup_logging()
    p = load_params(params)
    decision = run_gate(
        p.paths.reports / "metrics.json",
        p.paths.reports / "gate.json",
        GateConfig.model_validate(p.section("gate")),
        TrackingConfig.model_validate(p.section("tracking")),
        Path.cwd(),
        p.paths.processed,
        p.paths.models,
        Path("dvc.lock"),
    )
    typer.echo(f"gate: {decision['action']}: {decision['reason']}")


@app.command()
def package(params: Path = PARAMS) -> None:
    """Import the registry's champion as a Bento model and build the Bento."""
    from mtrec.config import PackageConfig, TrackingConfig
    from mtrec.lifecycle.package import package_champion

    _setup_logging()
    p = load_params(params)
    try:
        summary = package_champion(
            TrackingConfig.model_validate(p.section("tracking")),
            PackageConfig.model_validate(p.section("package")),
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
    from mtrec.config import OnlineConfig, SimulatorConfig
    from mtrec.simulator.steps import online_evaluation

    _setup_logging()
    p = load_params(params)
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
    report = online_evaluation(
        p.data.simulator or SimulatorConfig(),
        OnlineConfig.model_validate(p.section("online")),
        model_dirs,
        out_path,
        baseline,
    )
    for name, summary in report["policies"].items():
        typer.echo(
            f"{name}: viewing time {summary['viewing_time']['mean']:.2f}, "
            f"reward/shown {summary['reward_per_shown']['mean']:.3f}, "
            f"CTR {summary['ctr']['mean']:.3f}, "
            f"responsiveness {report['responsiveness'][name]['responsiveness']:.3f}"
        )


def main() -> None:  # pragma: no cover - console entry
    app()
