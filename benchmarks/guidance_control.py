"""Can the alignment loss move NDCG_p at all on this data? Guidance controls.

MTRec's guidance can only help as far as its reward knows which items
satisfy. To separate "the reward is uninformative" from "the alignment loss
cannot help on this data", this trains the guided candidate with other
rewards in place of the learned one (`--signal`), each the same way:

- a labelled control that *does* know: r(s, 1) = the item's mean train rating
  (`rating`, ML-100k) or true reward (`true_reward`, the simulator). It uses
  the satisfaction signal on purpose, as an upper bound; never a pipeline
  option, and valid/test labels are never read;
- a label-free proxy, `continuation`: the item's share of train clicks after
  which the user acted again in the session (behaviour only): the bar any
  IRL reward must beat;
- `learned`: the pipeline's own read-out table unchanged, so the IRL reward
  gets the same beta grid.

Item means are shrunk toward the global mean with `--prior-count`
pseudo-observations (an item with none gets the global mean), z-scored over
the train exposures, with r(s, 0) = 0. The table is a copy of the pipeline's
read-out with the guidance columns (`mtrec`: reward_pos_mean_z /
reward_neg_mean_z) replaced, so the same `train_recommender` and
`evaluate_candidates` run on it. The unguided candidate is trained beside it
on the same seeds; the comparison is the paired t-interval over seeds of
`guided_vs_base.py`; beta is chosen on validation. On the simulator,
`headroom.py --candidates <work>/candidates` then measures each online.

    python benchmarks/guidance_control.py --backbone gru4rec --signal rating \
        --betas 0.03 0.3 --seeds 0 1 2 3 4 --work /tmp/guidance_control \
        --out benchmarks/results/guidance_control_ml100k_gru4rec.json

(after `dvc repro` has written data/processed and the read-out table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import machine_info
from guided_vs_base import paired as paired_over_seeds
from guided_vs_base import per_seed

from mtrec.config import load_params
from mtrec.evaluation.evaluate import evaluate_candidates
from mtrec.reward.alignment import GUIDANCE_COLUMNS
from mtrec.reward.proxies import proxy_session_gap, shrunk_item_mean, with_continuation
from mtrec.training.recommender import train_recommender

METRICS = ("NDCG_p@10", "NDCG@10", "HR_n@10", "AUC")


def control_table(
    read_out: pd.DataFrame, item_reward: np.ndarray, guidance: str = "mtrec"
) -> pd.DataFrame:
    """The read-out table with `guidance`'s two reward columns replaced by the
    labelled control, z-scored over the train exposures as the read-out is."""
    positive_column, negative_column = GUIDANCE_COLUMNS[guidance]
    raw = item_reward[read_out["item_idx"].to_numpy()]
    train = (read_out["split"] == "train").to_numpy()
    z = (raw - raw[train].mean()) / raw[train].std()
    table = read_out.copy()
    table[positive_column] = z.astype(np.float32)
    table[negative_column] = np.float32(0.0)
    return table


def with_beta(config, backbone: str, beta: float):
    """The recommender config with the `mtrec` guidance's beta set for `backbone`,
    in its per-backbone override too (which would otherwise win over it)."""
    options = config.guidance_options | {
        "mtrec": {**config.guidance_options["mtrec"], "beta": beta}
    }
    overrides = {key: dict(value) for key, value in config.guidance_options_overrides.items()}
    if "mtrec" in overrides.get(backbone, {}):
        overrides[backbone]["mtrec"] = {**overrides[backbone]["mtrec"], "beta": beta}
    return config.model_copy(
        update={"guidance_options": options, "guidance_options_overrides": overrides}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--backbone", default="gru4rec", choices=["gru4rec", "sasrec", "din"])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.03])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--prior-count", type=float, default=5.0)
    parser.add_argument(
        "--signal",
        default="rating",
        choices=["rating", "true_reward", "watch_ratio", "continuation", "learned"],
        help="the train signal the control reward averages per item: a satisfaction "
        "label (rating; true_reward, the simulator's) or continuation (did the user act "
        "again in the session after the click: behaviour only, no label); learned: the "
        "pipeline's own read-out table unchanged (the same beta grid for the IRL reward)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/guidance_control"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    params = load_params(args.params)
    processed = params.paths.processed
    config = params.recommender
    read_out_path = config.rewards_table(args.backbone)
    table = pd.read_parquet(read_out_path)
    if args.signal != "learned":
        train = pd.read_parquet(processed / "train.parquet")
        if args.signal == "continuation":
            train = with_continuation(train, proxy_session_gap(params.reward.session_gap))
        if args.signal not in train.columns:
            raise SystemExit(f"the control needs {args.signal!r} in the train split")
        n_items = json.loads((processed / "meta.json").read_text())["n_items"]
        item_reward = shrunk_item_mean(train, args.signal, n_items, args.prior_count)
        table = control_table(table, item_reward)
    table_path = args.work / "rewards" / f"{args.backbone}.parquet"
    table_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(table_path)

    models = args.work / "candidates"
    if models.exists():
        shutil.rmtree(models)
    names = [f"{args.backbone}-none"]
    train_recommender(config, args.backbone, "none", processed, models / names[0], args.seeds)
    for beta in args.betas:
        guided = with_beta(config, args.backbone, beta)
        name = f"{args.backbone}-mtrec"
        out = models / f"{name}-beta{beta:g}"
        train_recommender(guided, args.backbone, "mtrec", processed, out, args.seeds, table_path)
        # evaluate_candidates keys candidates by folder; keep the beta in the name.
        summary_path = out / "train_summary.json"
        summary = json.loads(summary_path.read_text())
        summary["name"] = f"{name}-beta{beta:g}"
        summary_path.write_text(json.dumps(summary, indent=2))
        names.append(summary["name"])
    reports = args.work / "reports"
    report = evaluate_candidates(params.evaluate, processed, models, reports, names, progress=False)

    candidates = {
        name: json.loads((reports / "candidates" / f"{name}.json").read_text()) for name in names
    }
    base = candidates[names[0]]
    comparisons = {}
    for name in names[1:]:
        comparisons[name] = {
            split: {
                metric: paired_over_seeds(
                    per_seed(candidates[name], split, metric),
                    per_seed(base, split, metric),
                    args.level,
                )
                for metric in METRICS
            }
            for split in ("valid", "test")
        }
    result = {
        "benchmark": "guidance_control",
        "command": "python benchmarks/guidance_control.py "
        + f"--backbone {args.backbone} --signal {args.signal} "
        + f"--betas {' '.join(f'{b:g}' for b in args.betas)} "
        + f"--seeds {' '.join(map(str, args.seeds))} --out {args.out}",
        "control_reward": "the pipeline's read-out (QR-IQL), unchanged"
        if args.signal == "learned"
        else f"item mean train {args.signal}, shrunk with "
        f"{args.prior_count:g} pseudo-ratings, z-scored over train exposures; r(s,0) = 0",
        "backbone": args.backbone,
        "seeds": args.seeds,
        "means": {name: report["candidates"][name]["mean"] for name in names},
        "valid_means": {
            name: {
                metric: float(np.mean(list(per_seed(candidates[name], "valid", metric).values())))
                for metric in METRICS
            }
            for name in names
        },
        "versus_base": comparisons,
        "seconds": time.perf_counter() - started,
        "machine": machine_info(threads=args.threads, device="cpu"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    for name, entry in comparisons.items():
        for split in ("valid", "test"):
            v = entry[split]["NDCG_p@10"]
            print(
                f"{name} - {names[0]} {split} NDCG_p@10: {100 * v['relative_gain']:+.1f}% "
                f"[{100 * v['relative_interval']['lower']:+.1f}%, "
                f"{100 * v['relative_interval']['upper']:+.1f}%]"
            )


if __name__ == "__main__":
    main()
