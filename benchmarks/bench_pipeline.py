"""Where the default job's time goes: every stage of dvc.yaml, one at a time.

In a project directory (a clone or worktree with params.yaml and dvc.yaml), runs
each stage of the pipeline in dvc.yaml's order (`dvc stage list`: foreach and
matrix members expanded) as `dvc repro -s -f <stage>` (DVC's hashing and lock
writing included, as in `dvc repro`), or with `--mode cmd` the stage's own
command, and records per stage:

- wall seconds;
- CPU seconds (user + system) of the child processes: the delta of
  getrusage(RUSAGE_CHILDREN) across the stage. With one thread per stage
  (MTREC_NUM_THREADS=1) this is the work done, much less sensitive to other
  jobs on a shared machine than wall time;
- peak RSS of the stage's process tree (wait4's ru_maxrss: the largest
  process of the tree, not their sum);
- the 1/5/15-minute load average at the stage's start and end.

    MTREC_NUM_THREADS=1 nice -n 10 python benchmarks/bench_pipeline.py \\
        --project . --out benchmarks/results/default_job_stages_before.json

Stages run with -f, so everything reruns, and in order, so each one reads its
predecessor's fresh outputs: the whole run is one full `dvc repro` (dvc.lock
is rewritten). BentoML's store defaults to `<project>/bentoml_home` (not
~/bentoml) unless BENTOML_HOME is set; MLflow's is the project's mlflow.db
unless MLFLOW_TRACKING_URI is set: delete it first to time a first run (no
champion yet; the gate then scores no champion). The JSON is rewritten after
every stage, so an interrupted run still leaves the stages done.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from common import machine_info

THREAD_VARIABLES = (
    "MTREC_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


def pipeline_stages(project: Path) -> list[str]:
    """The stages of dvc.yaml in file order, foreach/matrix members expanded."""
    listing = subprocess.run(
        ["dvc", "stage", "list", "--name-only"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line.strip() for line in listing.splitlines() if line.strip()]


def stage_commands(project: Path) -> dict[str, str]:
    """stage name -> its command, as DVC resolves it (interpolated)."""
    from dvc.repo import Repo

    # Addresses are relative to the working directory: the project's, as for
    # `dvc stage list` there.
    with contextlib.chdir(project), Repo(str(project)) as repo:
        return {stage.addressing: stage.cmd for stage in repo.index.stages if stage.cmd}


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def run_stage(argv: list[str], project: Path, env: dict[str, str], log_path: Path) -> dict:
    """One stage in a child process; its wall and CPU seconds, peak RSS, load."""
    load_start = list(os.getloadavg())
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
        # wait4: the tree's own rusage; its ru_maxrss is the largest RSS of any
        # process in it (DVC or the stage command it starts).
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "argv": argv,
        "returncode": process.returncode,
        "wall_seconds": wall,
        "cpu_seconds": cpu_seconds(after) - cpu_seconds(before),
        "user_seconds": after.ru_utime - before.ru_utime,
        "system_seconds": after.ru_stime - before.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
        "log": str(log_path),
    }


def git_commit(project: Path) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True
    )
    return result.stdout.strip() or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, required=True, help="JSON (benchmarks/results/...)")
    parser.add_argument(
        "--mode",
        choices=("dvc", "cmd"),
        default="dvc",
        help="dvc: `dvc repro -s -f <stage>`; cmd: the stage's command alone (no lock)",
    )
    parser.add_argument(
        "--stage", action="append", default=None, help="only these stages (default: all)"
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        help="stage logs (default: /tmp/bench_pipeline/<out's stem>/)",
    )
    args = parser.parse_args()
    project = args.project.resolve()
    out = args.out.resolve()
    logs = (args.logs or Path("/tmp/bench_pipeline") / out.stem).resolve()
    logs.mkdir(parents=True, exist_ok=True)

    stages = pipeline_stages(project)
    if args.stage:
        unknown = sorted(set(args.stage) - set(stages))
        if unknown:
            parser.error(f"unknown stages {unknown}; dvc.yaml has {stages}")
        stages = [s for s in stages if s in args.stage]
    commands = stage_commands(project)

    env = dict(os.environ)
    env.setdefault("BENTOML_HOME", str(project / "bentoml_home"))
    threads = env.get("MTREC_NUM_THREADS")
    report = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "project": str(project),
        "git_commit": git_commit(project),
        "mode": args.mode,
        "machine": machine_info(threads=int(threads) if threads else 0, device="cpu"),
        "threads": {name: env.get(name) for name in THREAD_VARIABLES},
        "nice": os.nice(0),
        "stages": {},
    }
    print(f"{len(stages)} stages: {', '.join(stages)}", file=sys.stderr)
    for stage in stages:
        argv = (
            ["dvc", "repro", "-s", "-f", stage]
            if args.mode == "dvc"
            else ["bash", "-c", commands[stage]]
        )
        log_name = stage.replace("@", "_").replace("/", "_") + ".log"
        result = run_stage(argv, project, env, logs / log_name)
        result["cmd"] = commands.get(stage)
        report["stages"][stage] = result
        done = report["stages"].values()
        report["total"] = {
            key: sum(s[key] for s in done) for key in ("wall_seconds", "cpu_seconds")
        }
        report["total"]["peak_rss_mib"] = max(s["peak_rss_mib"] for s in done)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(
            f"{stage}: rc {result['returncode']}, {result['wall_seconds']:.1f} s wall, "
            f"{result['cpu_seconds']:.1f} s CPU, {result['peak_rss_mib']:.0f} MiB, "
            f"load {result['load_average_end'][0]:.2f}",
            file=sys.stderr,
        )
        if result["returncode"] != 0:
            sys.exit(f"stage {stage} failed; log {result['log']}")
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
