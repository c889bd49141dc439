"""dvc.yaml lists params per key: a change reruns only the stages that read it.

Checked with the real DVC on the real dvc.yaml and params.yaml: in a throwaway
repo every dependency and output is a placeholder file, `dvc commit` records
the lock, then one params key is changed and `dvc status` must name exactly
the stages that depend on it (nothing is trained: seconds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MATRIX = {"backbones": ["gru4rec", "sasrec"], "guidances": ["none", "mtrec"]}


def _dvc(repo: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True
    )
    assert result.returncode == 0, f"dvc {args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _placeholder(path: Path) -> None:
    if path.exists():
        return
    if path.suffix:  # a file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{path.name}\n")
    else:  # a folder output
        path.mkdir(parents=True, exist_ok=True)
        (path / "placeholder").write_text("x\n")


@pytest.fixture(scope="module")
def committed(tmp_path_factory):
    """A repo with the real dvc.yaml/params.yaml (a 2 x 2 matrix), every stage
    committed with placeholder data: `dvc status` is clean."""
    from dvc.repo import Repo

    repo = tmp_path_factory.mktemp("params") / "project"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copy(ROOT / "bentofile.yaml", repo)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["recommender"].update(MATRIX)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    _dvc(repo, "init", "-q")
    _dvc(repo, "config", "core.analytics", "false")
    with Repo(str(repo)) as dvc_repo:
        stages = list(dvc_repo.index.stages)
        for stage in stages:
            for entry in [*stage.deps, *stage.outs]:
                _placeholder(Path(entry.fs_path))
    _dvc(repo, "commit", "-f", "-q")
    assert json.loads(_dvc(repo, "status", "--json")) == {}
    return repo, params


def changed_stages(repo: Path, params: dict, key: str, value) -> set[str]:
    """Stages `dvc status` reports after setting params `key` (dotted) to `value`."""
    edited = json.loads(json.dumps(params))
    *parents, last = key.split(".")
    node = edited
    for name in parents:
        node = node[name]
    node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    try:
        return set(json.loads(_dvc(repo, "status", "--json")))
    finally:
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        # issue 14: beta of mtrec must not retrain the unguided candidates
        (
            "recommender.guidance_options.mtrec.beta",
            0.5,
            {"train_recommender@gru4rec-mtrec", "train_recommender@sasrec-mtrec"},
        ),
        # issue 14: the CVaR level is a read-out setting; the Q-network stays
        ("reward.cvar_level", 0.5, {"read_out_rewards@gru4rec", "read_out_rewards@sasrec"}),
        ("reward.next_item_samples", 3, {"read_out_rewards@gru4rec", "read_out_rewards@sasrec"}),
        ("reward.gamma", 0.8, {"train_reward@gru4rec", "train_reward@sasrec"}),
        ("reward.encoders.sasrec.dim", 16, {"train_reward@sasrec"}),
        (
            "recommender.sasrec.dim",
            16,
            {"train_recommender@sasrec-none", "train_recommender@sasrec-mtrec"},
        ),
        (
            "recommender.train_overrides.sasrec.patience",
            3,
            {"train_recommender@sasrec-none", "train_recommender@sasrec-mtrec"},
        ),
        (
            "recommender.train.learning_rate",
            0.01,
            {f"train_recommender@{b}-{g}" for b in MATRIX["backbones"] for g in ("none", "mtrec")},
        ),
        # The gate re-scores a champion from another data version with these settings.
        ("evaluate.ncis_cap", 5.0, {"evaluate", "gate"}),
        ("split.seed", 1, {"split"}),
    ],
)
def test_a_params_change_reruns_only_its_stages(committed, key, value, expected):
    repo, params = committed
    assert changed_stages(repo, params, key, value) == expected


@pytest.mark.slow
def test_status_is_clean_again_after_the_change_is_undone(committed):
    repo, _ = committed
    assert json.loads(_dvc(repo, "status", "--json")) == {}


def test_every_params_key_is_read_by_a_stage_or_declared_outside_dvc():
    """A key no stage lists can change a result without `dvc status` noticing
    (only `flow`, the Prefect flow's own settings, is outside the DVC stages)."""
    listed: set[str] = set()
    for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values():
        for entry in stage.get("do", stage).get("params", []):
            listed.add(entry if isinstance(entry, str) else next(iter(entry)))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    backbones = params["recommender"]["backbones"]
    guidances = params["recommender"]["guidances"]

    def covered(key: str) -> bool:
        for entry in listed:
            for item_backbone in backbones:
                for item_guidance in guidances:
                    resolved = (
                        entry.replace("${item.backbone}", item_backbone)
                        .replace("${item.guidance}", item_guidance)
                        .replace("${item}", item_backbone)
                    )
                    if key == resolved or key.startswith(resolved + "."):
                        return True
        return False

    def leaves(node, prefix=""):
        if isinstance(node, dict) and node:
            for name, child in node.items():
                yield from leaves(child, f"{prefix}{name}.")
        else:
            yield prefix.rstrip(".")

    # `paths` are where the code reads and writes: dvc.yaml's deps and outs name
    # the same paths (test_params_paths_are_dvc_yaml_paths), so a change there is a
    # change of dvc.yaml.
    outside_dvc = ("flow.", "paths.")
    # Settings of matrix members that are not in the default matrix are read
    # when they join it (e.g. the din backbone, the irl guidance).
    unused = (
        tuple(
            f"recommender.{section}.{name}."
            for section, names in (
                (
                    "guidance_options",
                    set(params["recommender"]["guidance_options"]) - set(guidances),
                ),
                ("train_overrides", set(params["recommender"]["train_overrides"]) - set(backbones)),
                (
                    "guidance_options_overrides",
                    set(params["recommender"]["guidance_options_overrides"]) - set(backbones),
                ),
            )
            for name in names
        )
        + tuple(f"recommender.{name}." for name in {"sasrec", "gru4rec", "din"} - set(backbones))
        + tuple(
            f"reward.encoders.{name}." for name in {"sasrec", "gru4rec", "din"} - set(backbones)
        )
    )
    missing = [
        key
        for key in leaves(params)
        if not covered(key) and not (key + ".").startswith(outside_dvc + unused)
    ]
    assert not missing, f"params no dvc.yaml stage lists: {missing}"


def test_params_paths_are_dvc_yaml_paths():
    """The code writes where params' `paths` say; DVC tracks what dvc.yaml names.
    They must be the same places (checkpoints excepted: not a DVC output)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["paths"]
    text = (ROOT / "dvc.yaml").read_text()
    for key, path in params.items():
        if key in ("checkpoints", "quarantine", "validated", "raw", "candidates"):
            # Files inside a tracked folder, or not a DVC output at all.
            folder = {
                "validated": "data/validated",
                "quarantine": "data/validated",
                "raw": "data/raw",
                "candidates": "models/candidates",
            }.get(key)
            if folder is not None:
                assert str(path).startswith(folder), f"paths.{key}: {path} outside {folder}"
            continue
        assert str(path) in text, f"paths.{key} = {path} is not a dvc.yaml path"
