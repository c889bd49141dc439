"""Tune one option of a guidance (e.g. MTRec's beta) on validation data only.

Each value trains the candidate `<backbone>-<guidance>` with that option for the
given seeds (the same `train_recommender` the pipeline runs) and is scored by
the mean over seeds of a *validation* metric of the checkpoint early stopping
chose; the test split is never read. The report names the best value and the
entry to put in params.yaml: the backbone's `recommender.guidance_options_overrides`
(a value tuned on one backbone is that backbone's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtrec.config import RecommenderConfig
from mtrec.training.recommender import candidate_name, train_recommender


def tune_option(
    config: RecommenderConfig,
    backbone: str,
    guidance: str,
    option: str,
    values: Sequence[Any],
    processed_dir: str | Path,
    out_dir: str | Path,
    criterion: str,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Train one candidate per value of `option`, pick the value whose mean
    validation `criterion` is highest; write and return `<out_dir>/tuning.json`."""
    if not values:
        raise ValueError(f"no values to try for {option!r}")
    out_dir = Path(out_dir)
    seeds = list(config.seeds if seeds is None else seeds)
    trials = []
    for value in values:
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
        trials.append(
            {
                option: value,
                "valid_mean": _mean_over_seeds(valid),
                "best_epochs": [run["best_epoch"] for run in summary["seeds"].values()],
            }
        )
    best = max(trials, key=lambda trial: trial["valid_mean"][criterion])
    report = {
        "candidate": candidate_name(backbone, guidance),
        "option": option,
        "criterion": f"valid {criterion} (mean over seeds)",
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
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tuning.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _mean_over_seeds(runs: list[dict[str, float | None]]) -> dict[str, float]:
    keys = [k for k in runs[0] if all(run.get(k) is not None for run in runs)]
    return {k: float(np.mean([run[k] for run in runs])) for k in keys}
