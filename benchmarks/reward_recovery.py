"""Reward recovery of the mental reward model against the baselines it must beat.

For each seed: train the reward model with params.yaml's `reward` section (the
pipeline's defaults; a few keys can be overridden), read out every split with
the MDP it was trained on, and score every read-out, every behavioural proxy
(`mtrec.reward.proxies`) and the supervised ceiling (`mtrec.reward.ceiling`:
the same encoder trained on the truth) against the ground truth of the
positive exposures: Spearman with the simulator's true reward, AUC of
satisfied vs not, AUC of rating >= 4 vs <= 2 (ML-100k), and the coverage of the
learned quantile intervals. Evaluation only; nothing here feeds the pipeline.

    # the simulator (main's default world: 1,000 users, 500 items)
    python benchmarks/reward_data.py --out /tmp/rb/sim --source synthetic
    python benchmarks/reward_recovery.py --processed /tmp/rb/sim/processed \
        --backbone gru4rec --seeds 0 1 2 --out benchmarks/results/reward_recovery_sim_gru4rec.json

    # ML-100k (rating >= 4 vs <= 2 among held-out positives)
    python benchmarks/reward_data.py --out /tmp/rb/ml100k --source ml-100k
    python benchmarks/reward_recovery.py --processed /tmp/rb/ml100k/processed \
        --backbone gru4rec --seeds 0 1 2 \
        --out benchmarks/results/reward_recovery_ml100k_gru4rec.json

The "before" side (main at af20300) is `reward_recovery_before.py`. The JSON
holds per-seed histories (with the per-epoch validation truth, recorded and
never used to select) and, under `summary`, mean / std / per-seed values per
split, metric and score, plus each score as a fraction of the ceiling.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from mtrec.config import RewardConfig, SimulatorConfig, load_params
from mtrec.data.processed import load_processed
from mtrec.evaluation.metrics import spearman
from mtrec.reward.calibration import calibration_report
from mtrec.reward.ceiling import fit_supervised_ceiling
from mtrec.reward.distill import fit_state_regression
from mtrec.reward.mdp import concat_splits, display_distribution, split_views
from mtrec.reward.proxies import behavioural_proxies, proxy_session_gap
from mtrec.reward.qnetwork import load_qnetwork
from mtrec.reward.readout import compute_rewards, readout_scores, recovery_report
from mtrec.reward.train import MONITORED, behaviour_only, best_epoch, train_reward
from mtrec.simulator.world import expected_reward, load_world, preference_fit

CEILING = "supervised_ceiling"
METRICS = ("spearman_true_reward", "auc_satisfied", "auc_rating_4_vs_2")
CALIBRATION = (
    "calibration__coverage_0.8",
    "calibration__width_0.8",
    "calibration__coverage_0.6",
    "calibration__true_width_0.8",
    "calibration__overlap_true_0.8",
)
OVERRIDABLE = (
    "max_epochs",
    "patience",
    "monitor",
    "objective",
    "target",
    "session_gap",
    "leave_action",
    "behaviour_weight",
    "learning_rate",
    "windows_per_batch",
)


def summarise(runs: list[dict], splits: tuple[str, ...]) -> dict:
    """mean / std / values over seeds of every recovery key, per split; and each
    score's metric as a fraction of the ceiling's (per seed, then averaged)."""
    summary: dict = {}
    for split in splits:
        keys = sorted(set().union(*(run["recovery"][split] for run in runs)))
        table = {}
        for key in keys:
            values = [float(run["recovery"][split].get(key, np.nan)) for run in runs]
            table[key] = {
                "mean": float(np.nanmean(values)) if np.isfinite(values).any() else None,
                "std": float(np.nanstd(values)) if np.isfinite(values).any() else None,
                "values": [round(v, 4) for v in values],
            }
        fractions = {}
        for metric in METRICS:
            ceiling_key = f"{metric}__{CEILING}"
            if ceiling_key not in table:
                continue
            for key in keys:
                if not key.startswith(f"{metric}__") or key == ceiling_key:
                    continue
                ratio = [
                    # AUC: share of the ceiling's lift above chance; Spearman: plain ratio.
                    (run["recovery"][split][key] - (0.5 if metric.startswith("auc") else 0.0))
                    / (
                        run["recovery"][split][ceiling_key]
                        - (0.5 if metric.startswith("auc") else 0.0)
                    )
                    for run in runs
                ]
                fractions[key] = {
                    "mean": float(np.mean(ratio)),
                    "values": [round(r, 3) for r in ratio],
                }
        summary[split] = {
            "scores": table,
            "fraction_of_ceiling": fractions,
            "paired": paired_against_baselines(runs, split),
        }
    return summary


# The read-outs each baseline is compared with, paired over seeds.
HEADLINE_READOUTS = ("reward_pos_mean", "reward_pos_expected")


def paired_against_baselines(runs: list[dict], split: str, level: float = 0.95) -> dict:
    """Per metric, each headline read-out minus each score that is not a read-out
    (proxies, distilled read-outs, the ceiling, world references): the mean
    per-seed difference and its paired t-interval over seeds (absolute units)."""
    from guided_vs_base import paired

    readouts = readout_names()
    out: dict = {}
    keys = sorted(set().union(*(run["recovery"][split] for run in runs)))
    for metric in METRICS:
        for readout in HEADLINE_READOUTS:
            mine = f"{metric}__{readout}"
            if mine not in keys:
                continue
            for key in keys:
                if not key.startswith(f"{metric}__") or key.split("__", 1)[1] in readouts:
                    continue
                # Seeds where both are defined, paired as guided_vs_base pairs them.
                values = [
                    (
                        float(run["recovery"][split].get(mine, np.nan)),
                        float(run["recovery"][split].get(key, np.nan)),
                    )
                    for run in runs
                ]
                both = {str(n): v for n, v in enumerate(values) if np.isfinite(v).all()}
                result = paired(
                    {n: v[0] for n, v in both.items()}, {n: v[1] for n, v in both.items()}, level
                )
                out[f"{mine} - {key.split('__', 1)[1]}"] = {
                    "diff_mean": result["diff_mean"],
                    "lower": result["interval"]["lower"],
                    "upper": result["interval"]["upper"],
                    "n_seeds": len(both),
                    "level": level,
                }
    return out


def readout_names() -> set[str]:
    """The learned read-outs `readout_scores` reports (read off a one-row table)."""
    import pandas as pd

    from mtrec.reward.readout import readout_scores

    columns = ("mean", "expected")
    row = {f"reward_{a}_{c}": [0.0] for a in ("pos", "neg") for c in columns}
    row |= {"advantage": [0.0], "reward_pos_cvar": [0.0]}
    row |= {"stay_advantage_pos": [0.0], "stay_advantage_neg": [0.0]}
    return set(readout_scores(pd.DataFrame(row)))


def world_references(truth, raw: Path) -> dict[str, np.ndarray]:
    """Scores that read the simulator's hidden world (evaluation-only references,
    no learned model can see them), row-aligned with `truth`:

    - `world_expected_reward`: the true mean reward of (user, item) at the user's
      base interest (no reward noise, no interest drift): about the best any
      read-out of the state (h, i) can do;
    - `world_item_quality`: the item part of it alone;
    - `world_click_logit`: the true click logit at the base interest: what the
      click choices reveal, i.e. what an IRL reward that explained every choice
      would be (up to shaping). Clickbait is in it, not in the reward.
    Empty when `raw` holds no world (ML-100k)."""
    world_path, config_path = raw / "simulator_truth.npz", raw / "simulator_config.json"
    if not (world_path.exists() and config_path.exists()):
        return {}
    world = load_world(world_path)
    sim = SimulatorConfig.model_validate_json(config_path.read_text())
    users = truth["user_id"].astype(int).to_numpy() - 1
    items = truth["item_id"].astype(int).to_numpy() - 1
    interest = world.user_preferences[users]
    fit = preference_fit(world, interest, items[:, None])[:, 0]
    bait = world.user_susceptibility[users] * world.item_clickbait[items]
    return {
        "world_expected_reward": expected_reward(world, sim, interest, items[:, None])[:, 0],
        "world_item_quality": world.item_quality[items],
        # The item's reward noise scale: with world_expected_reward, the true reward
        # distribution of the exposure (Gaussian, ignoring interest drift).
        "world_noise_scale": world.item_noise_scale[items],
        "world_click_logit": sim.click_bias
        + sim.click_fit_weight * fit
        + sim.click_bait_weight * bait,
    }


def distillation_targets(rewards, baselines, log, gamma: float) -> dict[str, np.ndarray]:
    """Behavioural targets of clicks for the distilled read-outs (NaN elsewhere).

    A row that ends its user's view only because the split ends there (the
    user's last train row, say) has no observed future: NaN too. Rows that are
    terminal because the user left (the last exposure, a session gap) keep
    their target: that is the outcome."""
    users = log["user_idx"].to_numpy()
    cut = np.zeros(len(log), dtype=bool)
    for _, view_rows, own in split_views(log):
        view_users = users[view_rows]
        last_in_view = np.r_[view_users[1:] != view_users[:-1], True]
        cut[view_rows[own]] = last_in_view[own]
    cut &= ~np.r_[users[1:] != users[:-1], True]  # the user's last row of the log is real
    keep = (rewards["response"].to_numpy() == 1) & ~cut

    def only(values):
        return np.where(keep, np.asarray(values, dtype=float), np.nan)

    next_value = rewards["next_value"].to_numpy()
    return {
        # IRL: value of the realised next state, and Q(s,1) plus it (METHOD.md section 6).
        "distilled_next_value": only(next_value),
        "distilled_q_plus_next_value": only(rewards["q_pos"].to_numpy() + gamma * next_value),
        # No IRL: did the user go on in the session after the click.
        "distilled_continuation": only(baselines["continuation"].to_numpy()),
    }


def criterion_tracking(history: list[dict], monitor: str) -> dict:
    """How the selection criterion tracks recovery over epochs (reporting only)."""
    column = MONITORED[monitor]
    out: dict = {"selected_epoch": best_epoch(history, monitor)}
    for key in history[0]:
        if not key.startswith("truth_valid_"):
            continue
        values = [record[key] for record in history]
        criterion = [-record[column] for record in history]
        out[key] = {
            "at_selected": values[out["selected_epoch"] - 1],
            "best": float(np.nanmax(values)),
            "best_epoch": int(np.nanargmax(values)) + 1,
            "spearman_over_epochs_with_criterion": spearman(criterion, values),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processed", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/reward_recovery"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--backbone", default="gru4rec", choices=["gru4rec", "sasrec", "din"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help=f"reward overrides k=v: {OVERRIDABLE}")
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument(
        "--distill",
        action="store_true",
        help="also fit (h, i) models to behavioural targets of train clicks (distilled read-outs)",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse models already trained under --work"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--resummarise",
        action="store_true",
        help="only recompute `summary` of the existing --out from its per-seed runs",
    )
    args = parser.parse_args()
    if args.resummarise:
        result = json.loads(args.out.read_text())
        result["summary"] = summarise(result["runs"], tuple(result["runs"][0]["recovery"]))
        args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
        return
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in OVERRIDABLE:
            raise SystemExit(f"--set {key}: only {OVERRIDABLE}")
        overrides[key] = None if value == "null" else value
    base = RewardConfig.model_validate(
        {
            **load_params(args.params).reward.model_dump(mode="json", exclude={"backbone"}),
            **overrides,
            "device": "cpu",
        }
    ).for_backbone(args.backbone)

    processed = load_processed(args.processed)
    frames = {name: processed.split(name) for name in ("train", "valid", "test")}
    log = concat_splits({name: behaviour_only(frame) for name, frame in frames.items()})
    truth = concat_splits(frames)
    signals = [c for c in ("satisfied", "rating", "true_reward") if c in truth.columns]
    watch_ratio = truth["watch_ratio"].to_numpy() if "watch_ratio" in truth else None
    baselines = behavioural_proxies(
        log, processed.n_items, proxy_session_gap(base.session_gap), watch_ratio
    )
    ceiling_target = next((c for c in ("true_reward", "rating") if c in truth.columns), None)
    references = world_references(truth, args.processed.parent / "raw")
    display = display_distribution(processed.train, processed.n_items)
    splits = ("valid", "test")
    runs = []
    for seed in args.seeds:
        config = base.model_copy(update={"seed": seed})
        folder = args.work / f"{args.processed.parent.name}_{args.backbone}_{seed}"
        summary_path = folder / "train_summary.json"
        if args.reuse and summary_path.exists():  # trained by an earlier run with this config
            saved = json.loads((folder / "config.json").read_text())["metadata"]["reward"]
            if RewardConfig.model_validate(saved) != config:
                raise SystemExit(f"{folder} was trained with another config: drop --reuse")
            train_seconds = json.loads((folder / "timing.json").read_text())["train_seconds"]
        else:
            began = time.perf_counter()
            train_reward(config, args.processed, folder, progress=False)
            train_seconds = time.perf_counter() - began
        summary = json.loads(summary_path.read_text())
        rewards = compute_rewards(
            load_qnetwork(folder), log, config, display, device, progress=False
        )
        scores = baselines.copy()
        for name, values in references.items():
            scores[name] = values
        ceiling_history = None
        if ceiling_target is not None and not args.no_ceiling:
            predictions, ceiling_history = fit_supervised_ceiling(
                config, log, truth[ceiling_target].to_numpy(), processed.n_items, device
            )
            scores[CEILING] = predictions
        distill_histories = {}
        if args.distill:
            targets = distillation_targets(rewards, baselines, log, config.gamma)
            for name, target in targets.items():
                # Valid clicks end their view (no observed future): stop on 10% of
                # the train users instead, never on test behaviour.
                scores[name], distill_histories[name] = fit_state_regression(
                    config, log, target, processed.n_items, device, holdout_users=0.1
                )
        noise = scores.pop("world_noise_scale") if "world_noise_scale" in scores else None
        recovery = recovery_report(rewards, truth[signals], scores)
        if noise is not None:
            # The learned 10-90% interval against the true one, not only the realised
            # rewards: is a covering interval as wide as the truth's, or wider?
            quantile_columns = sorted(c for c in rewards if re.fullmatch(r"reward_pos_q\d+", c))
            positive = (rewards["response"] == 1).to_numpy()
            for split in splits:
                calibration = calibration_report(
                    rewards[quantile_columns].to_numpy(),
                    truth["true_reward"].to_numpy(),
                    positive & (rewards["split"] == "train").to_numpy(),
                    positive & (rewards["split"] == split).to_numpy(),
                    true_mean=scores["world_expected_reward"].to_numpy(),
                    true_std=np.asarray(noise, dtype=float),
                )
                for key, value in calibration.items():
                    if key.startswith(("true_width_", "overlap_true_")):
                        recovery[split][f"calibration__{key}"] = value
        if "world_click_logit" in references:
            # What the read-outs track: the true reward, or what drove the clicks?
            positive = (rewards["response"] == 1).to_numpy()
            logit = references["world_click_logit"]
            for split in splits:
                rows = positive & (rewards["split"] == split).to_numpy()
                for name, score in readout_scores(rewards).items():
                    ok = rows & np.isfinite(score)
                    recovery[split][f"spearman_world_click_logit__{name}"] = spearman(
                        score[ok], logit[ok]
                    )
        run = {
            "seed": seed,
            "train_seconds": round(train_seconds, 1),
            "epochs_run": summary["epochs"],
            "best_epoch": summary["best_epoch"],
            "criterion_tracking": criterion_tracking(summary["history"], config.monitor),
            "history": summary["history"],
            "ceiling_history": ceiling_history,
            "distill_histories": distill_histories,
            "recovery": {split: recovery[split] for split in splits},
        }
        runs.append(run)
        test = recovery["test"]
        shown = {
            k: round(v, 3)
            for k, v in test.items()
            if k.startswith(("spearman", "auc_rating")) or k in CALIBRATION
        }
        print(
            json.dumps(
                {"seed": seed, "epochs": run["epochs_run"], "best": run["best_epoch"], **shown}
            ),
            flush=True,
        )
    result = {
        "processed": str(args.processed),
        "meta": json.loads((args.processed / "meta.json").read_text()),
        "backbone": args.backbone,
        "reward_config": base.model_dump(mode="json", exclude={"seed"}),
        "overrides": overrides,
        "proxy_session_gap": proxy_session_gap(base.session_gap),
        "seeds": args.seeds,
        "summary": summarise(runs, splits),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
