"""dvc.yaml's stages, run one at a time by an orchestrator (the Prefect flow).

`dvc.yaml` is the one definition of the pipeline. This module reads it through
DVC's own index (the stages with their resolved commands, outputs and the
stages each depends on) and runs a single stage the way `dvc repro` would:
skip it when `dvc status` says it is up to date, otherwise remove its
non-persistent outputs, run its command, and `dvc commit` it, so its outputs go
to DVC's cache and `dvc.lock` records them exactly as after a manual
`dvc repro`. Commands of independent stages may run at the same time (the
candidate matrix); DVC's own commands take a repository lock, so they are
serialised here.

Nothing in this module is a step of the pipeline: the steps are the `mtrec`
commands the stages call.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# DVC's commands (status, commit, exp save, push) hold a repository lock; two at
# once in one repository fail with "Unable to acquire lock".
_DVC_LOCK = threading.Lock()


class StageFailed(RuntimeError):
    """A stage's command (or DVC's bookkeeping of it) failed; the message names it."""

    def __init__(self, stage: str, returncode: int, output_tail: str):
        self.stage = stage
        self.returncode = returncode
        super().__init__(
            f"stage {stage!r} failed with exit code {returncode}:\n{output_tail.rstrip()}"
        )


@dataclass(frozen=True)
class StagePlan:
    """One stage of dvc.yaml as DVC resolved it (matrix members are separate stages)."""

    name: str  # DVC's address, e.g. "train_recommender@gru4rec-mtrec"
    cmd: str
    outs: tuple[str, ...]  # outputs removed before the command runs (persist: false)
    upstream: tuple[str, ...]  # stages whose outputs this one reads


def plan(project: Path) -> list[StagePlan]:
    """Every stage of the project's dvc.yaml in an order where each stage comes
    after the stages it depends on."""
    import networkx as nx
    from dvc.repo import Repo

    # Stage addresses ("train_recommender@gru4rec-none") are relative to the
    # working directory, as the dvc commands that take them will run there.
    with contextlib.chdir(project), Repo(".") as repo:
        graph = repo.index.graph  # edges: stage -> stage it depends on
        stages = list(reversed(list(nx.topological_sort(graph))))
        result = []
        for stage in stages:
            if not getattr(stage, "cmd", None):
                continue  # a .dvc file (data tracked by hand), not a pipeline stage
            outs = tuple(str(out.def_path) for out in stage.outs if not out.persist)
            upstream = tuple(
                dep.addressing for dep in graph.successors(stage) if getattr(dep, "cmd", None)
            )
            cmd = stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd)
            result.append(StagePlan(stage.addressing, cmd, outs, upstream))
    return result


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess:
    with _DVC_LOCK:
        return subprocess.run(
            [sys.executable, "-m", "dvc", *args],
            cwd=project,
            capture_output=True,
            text=True,
        )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def is_up_to_date(project: Path, stage: str) -> bool:
    """`dvc status` of this stage alone (its inputs were settled by the stages before it)."""
    result = _dvc(project, "status", stage, "--json")
    if result.returncode != 0:
        raise StageFailed(stage, result.returncode, "dvc status: " + _tail(result.stderr))
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("{")]
    return not json.loads(lines[-1]) if lines else True


def run_stage(project: Path, stage: StagePlan, log: Callable[[str], None] = print) -> str:
    """Run one stage as `dvc repro --single-item` would; returns "up to date" or "ran"."""
    if is_up_to_date(project, stage.name):
        log(f"{stage.name}: up to date (dvc status)")
        return "up to date"
    for out in stage.outs:
        path = project / out
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    log(f"{stage.name}: {stage.cmd}")
    result = subprocess.run(stage.cmd, shell=True, cwd=project, capture_output=True, text=True)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise StageFailed(stage.name, result.returncode, _tail(output))
    log(f"{stage.name}: done\n{_tail(output, 10)}")
    committed = _dvc(project, "commit", "--force", "--quiet", stage.name)
    if committed.returncode != 0:
        raise StageFailed(
            stage.name, committed.returncode, "dvc commit: " + _tail(committed.stderr)
        )
    return "ran"


def record_run(project: Path, name: str) -> str | None:
    """Keep this run as a DVC experiment (`dvc exp save`): its params, dvc.lock and
    metrics, without touching the checked-out branch. None when the project is
    not a git repository with a commit (nothing to attach an experiment to)."""
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "HEAD"], cwd=project, capture_output=True, text=True
    )
    if head.returncode != 0:
        return None
    saved = _dvc(
        project, "exp", "save", "--force", "--name", name, "--include-untracked", "dvc.lock"
    )
    if saved.returncode != 0:
        raise StageFailed("record (dvc exp save)", saved.returncode, _tail(saved.stderr))
    return name


def push_if_configured(project: Path) -> str | None:
    """`dvc push` to the default remote, when the project has one; returns its name."""
    remote = _dvc(project, "config", "core.remote")
    name = remote.stdout.strip()
    if remote.returncode != 0 or not name:
        return None
    pushed = _dvc(project, "push", "--quiet")
    if pushed.returncode != 0:
        raise StageFailed(f"push to {name}", pushed.returncode, _tail(pushed.stderr))
    return name
