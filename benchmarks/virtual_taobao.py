"""The paper's RL table on VirtualTaobao: PPO and SAC with r_env against r_env + kappa * r_mental.

    python benchmarks/virtual_taobao.py --virtual-taobao-path ../shared/third_party/VirtualTaobao \
        --algorithms ppo sac --seeds 0 1 2 --ppo-steps 50000 --sac-steps 20000

Steps:
1. behaviour log: `--behaviour-sessions` sessions (seed `--reward-seed`) of the
   behaviour policy `--behaviour-policy`: `random` (uniform random pages, the
   default) or `ppo-mixture` (a PPO agent trained on r_env for
   `--behaviour-agent-steps` steps, deterministic, with a uniform random page
   instead with probability `--behaviour-epsilon` per page); then QR-IQL on the
   user's MDP (docs/virtual_taobao.md). One reward model serves every agent;
   saved under `--work-dir` and reused while its settings match (processes
   sharing a --work-dir take a lock, so one trains and the others load it).
   `--reward-only` stops after this step.
2. per (algorithm, reward, seed): train, evaluate CTR on `--eval-sessions`
   sessions (same users for both rewards of a seed), write one JSON per run
   under `<out>/runs/` (a rerun skips runs already there unless --force).
3. the table over every run JSON found: CTR mean +- std over seeds, env steps,
   seconds per 100k env steps, beside the paper's numbers -> `<out>.json`.

`--table-only` rebuilds the table from the run files (runs can be split over
processes with disjoint --algorithms/--seeds/--rewards; run `--reward-only` first).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info  # noqa: E402

# The MTRec paper's CTR on VirtualTaobao (Zhao et al., NeurIPS 2025).
PAPER_CTR = {
    ("ppo", "env"): 0.5435,
    ("ppo", "env+mental"): 0.678,
    ("sac", "env"): 0.7055,
    ("sac", "env+mental"): 0.909,
}
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "virtual_taobao"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--virtual-taobao-path",
        default=os.environ.get("VIRTUAL_TAOBAO_PATH"),
        help="folder holding virtualTB/ (a clone of github.com/eyounx/VirtualTaobao)",
    )
    parser.add_argument("--algorithms", nargs="+", default=["ppo", "sac"], choices=["ppo", "sac"])
    parser.add_argument(
        "--rewards", nargs="+", default=["env", "env+mental"], choices=["env", "env+mental"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ppo-steps", type=int, default=50_000)
    parser.add_argument("--sac-steps", type=int, default=20_000)
    parser.add_argument("--kappa", type=float, default=0.2)
    parser.add_argument("--sac-train-freq", type=int, default=4)
    parser.add_argument("--sac-gradient-steps", type=int, default=1)
    parser.add_argument("--sac-learning-starts", type=int, default=1_000)
    parser.add_argument("--eval-sessions", type=int, default=200)
    parser.add_argument("--behaviour-sessions", type=int, default=2_000)
    parser.add_argument(
        "--readout",
        choices=("expected-next", "advantage", "cvar"),
        default="expected-next",
        help="r_mental's read-out of the user Q-network (docs/virtual_taobao.md)",
    )
    parser.add_argument("--cvar-level", type=float, default=0.3, help="the cvar read-out's level")
    parser.add_argument(
        "--behaviour-policy",
        default="random",
        choices=["random", "ppo-mixture"],
        help="recommender that produces the reward model's log",
    )
    parser.add_argument(
        "--behaviour-agent-steps",
        type=int,
        default=50_000,
        help="ppo-mixture: env steps of the behaviour PPO agent (trained on r_env)",
    )
    parser.add_argument(
        "--behaviour-epsilon",
        type=float,
        default=0.3,
        help="ppo-mixture: probability of a uniform random page instead of the agent's",
    )
    parser.add_argument("--reward-seed", type=int, default=0)
    parser.add_argument("--reward-epochs", type=int, default=30)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "models" / "virtual_taobao")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--mlflow-uri", default=None, help="e.g. sqlite:///mlflow.db (optional)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="rerun runs whose JSON exists")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument(
        "--reward-only",
        action="store_true",
        help="train (or check) the reward model, then stop: run it once before parallel runs",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def reward_settings(args: argparse.Namespace) -> dict:
    """What decides whether a cached reward model is reused."""
    settings = {
        "behaviour_policy": args.behaviour_policy,
        "behaviour_sessions": args.behaviour_sessions,
        "reward_seed": args.reward_seed,
        "reward_epochs": args.reward_epochs,
    }
    if args.behaviour_policy == "ppo-mixture":
        settings["behaviour_agent_steps"] = args.behaviour_agent_steps
        settings["behaviour_epsilon"] = args.behaviour_epsilon
    if args.readout != "expected-next":  # caches from before read-out kinds stay valid
        settings["readout"] = args.readout
        if args.readout == "cvar":
            settings["cvar_level"] = args.cvar_level
    return settings


@contextmanager
def exclusive(lock_path: Path):
    """An exclusive advisory lock (flock) on `lock_path` while the block runs."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reward_readout(args: argparse.Namespace):
    """Train (or load, when the work dir holds one for the same settings) the read-out.
    Processes sharing the work dir serialise here: one trains, the others load."""
    from mtrec.rl.mental_reward import MentalRewardReadout

    folder = args.work_dir / "reward"
    settings = reward_settings(args)
    summary_path = args.out / "reward_model.json"
    with exclusive(args.work_dir / "reward.lock"):
        if (folder / "settings.json").exists() and summary_path.exists():
            if json.loads((folder / "settings.json").read_text()) == settings:
                return MentalRewardReadout.load(folder)
        readout, summary = train_reward_model(args, settings)
        (folder / "settings.json").unlink(missing_ok=True)  # stale until the new model is saved
        readout.save(folder, extra={"settings": settings})
        (folder / "settings.json").write_text(json.dumps(settings) + "\n")
        args.out.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return readout


def train_reward_model(args: argparse.Namespace, settings: dict):
    """The behaviour log of `--behaviour-policy`, then QR-IQL on it."""
    from mtrec.rl.mental_reward import (
        UserRewardConfig,
        collect_behaviour_log,
        train_mental_reward,
    )
    from mtrec.rl.virtual_taobao import VirtualTaobaoEnv

    env = VirtualTaobaoEnv(args.virtual_taobao_path)
    began = time.perf_counter()
    agent = {}
    if args.behaviour_policy == "ppo-mixture":
        from mtrec.rl.agents import collect_ppo_mixture_log

        log, agent = collect_ppo_mixture_log(
            env,
            args.virtual_taobao_path,
            args.behaviour_sessions,
            seed=args.reward_seed,
            agent_steps=args.behaviour_agent_steps,
            epsilon=args.behaviour_epsilon,
            progress=not args.no_progress,
        )
    else:
        log = collect_behaviour_log(
            env, args.behaviour_sessions, seed=args.reward_seed, progress=not args.no_progress
        )
    # For ppo-mixture this includes the agent's training (agent_train_seconds: that part).
    log_seconds = time.perf_counter() - began
    config = UserRewardConfig(
        seed=args.reward_seed,
        max_epochs=args.reward_epochs,
        readout=args.readout,
        cvar_level=args.cvar_level,
    )
    began = time.perf_counter()
    readout, summary = train_mental_reward(log, config, progress=not args.no_progress)
    summary.update(
        {
            "log_seconds": log_seconds,
            "train_seconds": time.perf_counter() - began,
            "behaviour_policy_description": log.policy,
            **agent,
            **settings,
        }
    )
    print(
        f"reward model: behaviour {log.policy}, {log.n_sessions} sessions, "
        f"{len(log)} transitions, log CTR {log.ctr:.4f}; "
        f"{log_seconds:.0f} s log, {summary['train_seconds']:.0f} s QR-IQL",
        flush=True,
    )
    return readout, summary


def run_name(algorithm: str, reward: str, seed: int) -> str:
    return f"{algorithm}_{reward.replace('+', '_')}_seed{seed}"


def run_all(args: argparse.Namespace) -> None:
    import torch

    from mtrec.rl.agents import AgentConfig, train_agent

    torch.set_num_threads(args.threads)
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    readout = reward_readout(args) if "env+mental" in args.rewards else None
    for algorithm in args.algorithms:
        for seed in args.seeds:
            for reward in args.rewards:
                path = runs / f"{run_name(algorithm, reward, seed)}.json"
                if path.exists() and not args.force:
                    continue
                config = AgentConfig(
                    algorithm=algorithm,
                    reward=reward,
                    steps=args.ppo_steps if algorithm == "ppo" else args.sac_steps,
                    seed=seed,
                    kappa=args.kappa,
                    sac_train_freq=args.sac_train_freq,
                    sac_gradient_steps=args.sac_gradient_steps,
                    sac_learning_starts=args.sac_learning_starts,
                    eval_sessions=args.eval_sessions,
                )
                result = train_agent(
                    config,
                    args.virtual_taobao_path,
                    readout=readout,
                    mlflow_uri=args.mlflow_uri,
                    progress=not args.no_progress,
                )
                result["machine"] = machine_info(args.threads, "cpu")
                path.write_text(json.dumps(result, indent=2) + "\n")
                print(
                    f"{run_name(algorithm, reward, seed)}: CTR {result['ctr']:.4f} "
                    f"({result['env_steps']} steps, {result['train_seconds']:.0f} s)",
                    flush=True,
                )


def build_table(runs: list[dict]) -> dict:
    """Rows per (algorithm, reward): CTR mean +- std over seeds, steps, timings, paper."""
    rows = []
    keys = sorted({(r["algorithm"], r["reward"], r["env_steps"]) for r in runs})
    for algorithm, reward, steps in keys:
        group = [
            r
            for r in runs
            if (r["algorithm"], r["reward"], r["env_steps"]) == (algorithm, reward, steps)
        ]
        ctr = np.array([r["ctr"] for r in group])
        rows.append(
            {
                "algorithm": algorithm,
                "reward": reward,
                "env_steps": steps,
                "seeds": sorted(r["seed"] for r in group),
                "ctr_mean": float(ctr.mean()),
                "ctr_std": float(ctr.std(ddof=1)) if len(ctr) > 1 else None,
                "ctr_per_seed": {str(r["seed"]): r["ctr"] for r in group},
                "session_ctr_mean": float(np.mean([r["session_ctr"] for r in group])),
                "kappa": group[0]["kappa"] if reward == "env+mental" else None,
                "seconds_per_100k_steps": float(
                    np.mean([r["seconds_per_100k_steps"] for r in group])
                ),
                "cpu_seconds_per_100k_steps": float(
                    np.mean([r["cpu_seconds_per_100k_steps"] for r in group])
                ),
                "paper_ctr": PAPER_CTR[(algorithm, reward)],
                "sac_train_freq": group[0]["sac_train_freq"] if algorithm == "sac" else None,
                "sac_gradient_steps": (
                    group[0]["sac_gradient_steps"] if algorithm == "sac" else None
                ),
            }
        )
    paired = []
    for algorithm, _, steps in {(a, "env", s) for a, _, s in keys}:
        by_seed = {
            (r["reward"], r["seed"]): r["ctr"]
            for r in runs
            if r["algorithm"] == algorithm and r["env_steps"] == steps
        }
        seeds = sorted(s for (kind, s) in by_seed if kind == "env" and ("env+mental", s) in by_seed)
        if seeds:
            gains = np.array([by_seed[("env+mental", s)] - by_seed[("env", s)] for s in seeds])
            paired.append(
                {
                    "algorithm": algorithm,
                    "env_steps": steps,
                    "seeds": seeds,
                    "ctr_gain_mean": float(gains.mean()),
                    "ctr_gain_std": float(gains.std(ddof=1)) if len(gains) > 1 else None,
                    "guided_better_on_seeds": int((gains > 0).sum()),
                }
            )
    return {"rows": rows, "paired_guided_minus_env": paired}


def write_table(args: argparse.Namespace) -> Path:
    runs = [json.loads(p.read_text()) for p in sorted((args.out / "runs").glob("*.json"))]
    if not runs:
        raise SystemExit(f"no run results under {args.out / 'runs'}")
    table = build_table(runs)
    reward_path = args.out / "reward_model.json"
    reward = json.loads(reward_path.read_text()) if reward_path.exists() else None
    if reward is not None:
        reward = {k: v for k, v in reward.items() if k != "history"}
    document = {
        "what": "CTR (clicks / pages / 10, deterministic policy, pooled over the evaluation "
        "sessions) after training on VirtualTaobao; paper_ctr: MTRec paper, Table (RL)",
        "command": "python benchmarks/virtual_taobao.py " + " ".join(sys.argv[1:]),
        "paper_ctr": {f"{a}/{r}": v for (a, r), v in PAPER_CTR.items()},
        **table,
        "reward_model": reward,
        "runs": runs,
    }
    path = args.out.parent / f"{args.out.name}.json"  # a dotted name (kappa_0.05) keeps its dot
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if not args.table_only:
        from mtrec.rl.virtual_taobao import VirtualTaobaoNotFound, resolve_virtual_taobao_path

        try:
            resolve_virtual_taobao_path(args.virtual_taobao_path)
        except VirtualTaobaoNotFound as error:
            raise SystemExit(str(error)) from None
        if args.reward_only:
            import torch

            torch.set_num_threads(args.threads)
            reward_readout(args)
            print(f"reward model ready under {args.work_dir / 'reward'}")
            return
        run_all(args)
    path = write_table(args)
    for row in json.loads(path.read_text())["rows"]:
        std = "n/a" if row["ctr_std"] is None else f"{row['ctr_std']:.4f}"
        print(
            f"{row['algorithm']:4s} {row['reward']:11s} steps {row['env_steps']:>7d} "
            f"CTR {row['ctr_mean']:.4f} +- {std} (paper {row['paper_ctr']}) "
            f"{row['seconds_per_100k_steps']:.0f} s/100k steps"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
