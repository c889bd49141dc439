"""Train and score the comparison rows side by side (the baselines table).

`compare_guidances` is a thin runner over the pipeline's own steps: for each
guidance (the unguided base, the baselines, or any registered guidance) it
trains the candidate `<backbone>-<guidance>` for each seed with
`mtrec.training.recommender.train_recommender` (epoch chosen on validation
only), scores every seed on the test split with
`mtrec.evaluation.evaluate.evaluate_candidates`, and writes
`<out_dir>/comparison.json` (per seed, mean and std) and a markdown table.

What it adds over the DVC matrix + `mtrec evaluate`: every guidance is checked
before any training (training refuses a satisfaction column unless the guidance
is registered as allowed to read one), and the table marks the rows that do.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from mtrec.config import EvaluateConfig, RecommenderConfig
from mtrec.data.processed import load_processed
from mtrec.evaluation.evaluate import evaluate_candidates
from mtrec.models import build_model
from mtrec.training.losses import (
    LossContext,
    check_satisfaction_use,
    make_loss,
    trains_on_satisfaction,
)
from mtrec.training.recommender import candidate_name, train_recommender

TABLE_METRICS = ("AUC", "GAUC", "NDCG@10", "HR@10", "NDCG_p@10", "HR_n@10", "dNDCG@10", "NCIS_lift")


def check_guidance(config: RecommenderConfig, backbone: str, guidance: str, n_items: int) -> None:
    """Build the guidance's loss once, before any training: a bad option or a
    satisfaction column it may not read fails fast (training checks it again)."""
    model = build_model(config.backbone_config(backbone), n_items)
    context = LossContext(
        model=model, catalogue_ce_weight=config.train_for(backbone).catalogue_ce_weight
    )
    loss = make_loss(guidance, config.options_for(backbone, guidance), context)
    check_satisfaction_use(guidance, loss.required_columns)


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def _history(metrics_csv: str | Path) -> list[dict[str, float | None]]:
    """Per-epoch train loss and validation metrics (the curve behind best_epoch)."""
    with Path(metrics_csv).open(newline="") as fh:
        return [
            {k: _finite(float(v)) if v != "" else None for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


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


def _candidate_entry(guidance: str, summary: dict, scored: dict) -> dict:
    """One row of comparison.json from a train_summary.json and its evaluate entry."""
    return {
        "guidance": guidance,
        "trains_on_satisfaction": trains_on_satisfaction(guidance),
        "n_seeds": len(summary["seeds"]),
        "seeds": {
            seed: {
                "best_epoch": run["best_epoch"],
                "model_dir": run["model_dir"],
                "seconds_per_epoch": run["seconds_per_epoch"],
                "test": scored["seeds"][seed],
                "history": _history(run["metrics_csv"]),
            }
            for seed, run in summary["seeds"].items()
        },
        "mean": scored["mean"],
        "std": scored["std"],
        "seconds_per_epoch": summary["seconds_per_epoch"],
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
    """Train and score each guidance for each seed; write comparison.json/.md.

    Candidates are trained into `<out_dir>/<backbone>-<guidance>/` and scored
    into `<out_dir>/metrics.json` and `<out_dir>/candidates/` (the layout of
    `mtrec train-recommender` and `mtrec evaluate`)."""
    import mtrec.baselines.guidance  # noqa: F401  (registers the baselines)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_items = load_processed(processed_dir).n_items
    for guidance in guidances:  # before any training: fail fast
        check_guidance(config, backbone, guidance, n_items)
    seeds = list(config.seeds if seeds is None else seeds)
    report: dict = {
        "backbone": backbone,
        "seeds": seeds,
        "split": "test",
        "train": config.train_for(backbone).model_dump(mode="json"),
        "guidance_options": {g: config.options_for(backbone, g) for g in guidances},
        "candidates": {},
    }
    names = {guidance: candidate_name(backbone, guidance) for guidance in guidances}
    summaries = {
        guidance: train_recommender(
            config, backbone, guidance, processed_dir, out_dir / names[guidance], seeds=seeds
        )
        for guidance in guidances
    }
    scored = evaluate_candidates(
        evaluate, processed_dir, out_dir, out_dir, names=list(names.values()), progress=False
    )["candidates"]
    report["candidates"] = {
        name: _candidate_entry(guidance, summaries[guidance], scored[name])
        for guidance, name in names.items()
    }
    (out_dir / "comparison.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "comparison.md").write_text(markdown_table(report))
    return report
