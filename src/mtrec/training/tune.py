"""Tune one option of a guidance (e.g. MTRec's beta) on validation data only, with Optuna.

Each trial trains the candidate `<backbone>-<guidance>` with one value of the
option for the given seeds (the same `train_recommender` the pipeline runs)
and is scored by the mean over seeds of a *validation* metric of the
checkpoint early stopping chose; the test split is never read. The values
come either from a list (Optuna's grid sampler, every value once) or from a
range searched by Optuna's TPE sampler (seeded; log scale for scales such as
beta, whose best value has sat at the low end of every hand grid). The study
lives in `<out_dir>/optuna.db`, so an interrupted tuning resumes where it
stopped, and each trial is logged as an MLflow run when a tracking URI is
given. The report names the best value and the entry to put in params.yaml:
the backbone's `recommender.guidance_options_overrides` (a value tuned on one
backbone is that backbone's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtrec.config import RecommenderConfig
from mtrec.training.recommender import candidate_name, train_recommender


@dataclass(frozen=True)
class SearchRange:
    """A float range for TPE: `n_trials` values in [low, high], log-uniform if `log`."""

    low: float
    high: float
    n_trials: int
    log: bool = True

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"empty search range [{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")
        if self.n_trials < 1:
            raise ValueError("n_trials must be >= 1")


def tune_option(
    config: RecommenderConfig,
    backbone: str,
    guidance: str,
    option: str,
    values: Sequence[Any] | None,
    processed_dir: str | Path,
    out_dir: str | Path,
    criterion: str,
    seeds: Sequence[int] | None = None,
    search: SearchRange | None = None,
    sampler_seed: int = 0,
    tracking_uri: str | None = None,
    experiment: str = "mtrec-tuning",
) -> dict[str, Any]:
    """Tune `option` over `values` (grid) or `search` (TPE), maximising the mean
    validation `criterion`; write and return `<out_dir>/tuning.json`."""
    import optuna

    if (values is None) == (search is None):
        raise ValueError("give either values to try or a search range, not both")
    if values is not None and not values:
        raise ValueError(f"no values to try for {option!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(config.seeds if seeds is None else seeds)

    if values is not None:
        choices = list(values)
        sampler = optuna.samplers.GridSampler({option: choices}, seed=sampler_seed)
        n_trials = len(choices)

        def suggest(trial: optuna.Trial) -> Any:
            return trial.suggest_categorical(option, choices)
    else:
        sampler = optuna.samplers.TPESampler(seed=sampler_seed)
        n_trials = search.n_trials

        def suggest(trial: optuna.Trial) -> Any:
            return trial.suggest_float(option, search.low, search.high, log=search.log)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"{candidate_name(backbone, guidance)}-{option}",
        storage=f"sqlite:///{(out_dir / 'optuna.db').resolve()}",
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )

    def objective(trial: optuna.Trial) -> float:
        value = suggest(trial)
        # The trial value as this backbone's override: it wins over guidance_options
        # and over an override already there, and leaves every other option as is.
        overrides = {b: dict(per) for b, per in config.guidance_options_overrides.items()}
        mine = overrides.setdefault(backbone, {})
        mine[guidance] = {**mine.get(guidance, {}), option: value}
        trial_config = config.model_copy(update={"guidance_options_overrides": overrides})
        summary = train_recommender(
            trial_config,
            backbone,
            guidance,
            processed_dir,
            out_dir / f"{option}={value}",
            seeds=seeds,
        )
        valid = [run["valid"] for run in summary["seeds"].values()]
        if any(run.get(criterion) is None for run in valid):
            raise KeyError(f"validation metric {criterion!r} missing; known: {sorted(valid[0])}")
        valid_mean = _mean_over_seeds(valid)
        trial.set_user_attr("valid_mean", valid_mean)
        trial.set_user_attr("best_epochs", [run["best_epoch"] for run in summary["seeds"].values()])
        if tracking_uri is not None:
            _log_trial(tracking_uri, experiment, study.study_name, trial, option, value, valid_mean)
        return valid_mean[criterion]

    remaining = n_trials - len([t for t in study.trials if t.state.is_finished()])
    if remaining > 0:
        # Errors (a bad option, a missing metric) stop the tuning, not just a trial.
        study.optimize(objective, n_trials=remaining, catch=())
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    trials = [
        {
            option: trial.params[option],
            "valid_mean": trial.user_attrs["valid_mean"],
            "best_epochs": trial.user_attrs["best_epochs"],
        }
        for trial in sorted(finished, key=lambda t: t.number)
    ]
    if values is not None:  # a grid reads best in the order it was given
        trials.sort(key=lambda trial: choices.index(trial[option]))
    best = max(trials, key=lambda trial: trial["valid_mean"][criterion])
    report = {
        "candidate": candidate_name(backbone, guidance),
        "option": option,
        "criterion": f"valid {criterion} (mean over seeds)",
        "sampler": type(sampler).__name__,
        "search": {"values": list(values)}
        if values is not None
        else {"low": search.low, "high": search.high, "log": search.log},
        "seeds": seeds,
        "trials": trials,
        "best": best[option],
        # Goes into the backbone's override (merged over guidance_options[guidance],
        # whose other options, and the override's, it was tuned with).
        "params": {
            "recommender": {
                "guidance_options_overrides": {backbone: {guidance: {option: best[option]}}}
            }
        },
    }
    (out_dir / "tuning.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _log_trial(uri, experiment, study, trial, option, value, valid_mean) -> None:
    """One MLflow run per trial: the option's value and the validation metrics."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(
        experiment_id, run_name=f"{study}-trial-{trial.number}", tags={"optuna.study": study}
    )
    client.log_param(run.info.run_id, option, value)
    client.log_param(run.info.run_id, "trial", trial.number)
    for key, metric in valid_mean.items():
        client.log_metric(run.info.run_id, f"valid_{key}".replace("@", "_at_"), metric)
    client.set_terminated(run.info.run_id)


def _mean_over_seeds(runs: list[dict[str, float | None]]) -> dict[str, float]:
    keys = [k for k in runs[0] if all(run.get(k) is not None for run in runs)]
    return {k: float(np.mean([run[k] for run in runs])) for k in keys}
