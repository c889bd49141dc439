"""Stage `package`: the registry's champion -> a Bento model -> a built Bento.

BentoML reads `BENTOML_HOME` once, when it is first imported; set
`PackageConfig.bentoml_home` (or the environment variable) before anything
imports bentoml in the process, or this step refuses to run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mtrec.config import PackageConfig, TrackingConfig
from mtrec.lifecycle import registry, tracking
from mtrec.lifecycle.pyfunc import MODEL_ARTIFACT, REWARD_ARTIFACT

RECOMMENDER_FOLDER = "recommender"
REWARD_FOLDER = "reward_model"


def use_bentoml_home(config: PackageConfig) -> str:
    """Point BentoML at the configured home; fail if it already uses another."""
    import sys

    wanted = config.bentoml_home or os.environ.get("BENTOML_HOME")
    if wanted:
        wanted = str(Path(wanted).resolve())
        if "bentoml" not in sys.modules:
            os.environ["BENTOML_HOME"] = wanted
    from bentoml._internal.configuration.containers import BentoMLContainer

    active = str(Path(BentoMLContainer.bentoml_home.get()).resolve())
    if wanted and active != wanted:
        raise RuntimeError(
            f"bentoml was imported with home {active}, not {wanted}: set BENTOML_HOME "
            "before the process imports bentoml"
        )
    return active


def download_champion(
    tracking_config: TrackingConfig, alias: str, destination: Path
) -> tuple[dict[str, Any], Path, Path | None]:
    """The registered version behind `alias` and its model (and reward) folders."""
    import mlflow

    record = registry.champion_record(tracking_config.registered_model, alias)
    if record is None:
        raise LookupError(
            f"no model under {tracking_config.registered_model}@{alias}: run the gate first"
        )
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=registry.champion_uri(tracking_config.registered_model, alias),
            dst_path=str(destination),
        )
    )
    spec = yaml.safe_load((local / "MLmodel").read_text())
    artifacts = spec["flavors"]["python_function"]["artifacts"]
    recommender = local / artifacts[MODEL_ARTIFACT]["path"]
    reward = artifacts.get(REWARD_ARTIFACT)
    return record, recommender, (local / reward["path"]) if reward else None


def import_bento_model(
    name: str, recommender_dir: Path, reward_dir: Path | None, metadata: dict[str, Any]
) -> str:
    """Copy the folders into a new Bento model version; returns its tag."""
    import bentoml

    labels = {"candidate": str(metadata.get("candidate")), "alias": str(metadata.get("alias"))}
    with bentoml.models.create(name, labels=labels, metadata=metadata) as bento_model:
        shutil.copytree(recommender_dir, bento_model.path_of(RECOMMENDER_FOLDER))
        if reward_dir is not None:
            shutil.copytree(reward_dir, bento_model.path_of(REWARD_FOLDER))
    return str(bento_model.tag)


def build_bento(project_root: Path, bento_model_tag: str, bentoml_home: str) -> str:
    """`bentoml build` of bentofile.yaml (build context src/) in a fresh process,
    so the service module is imported with this build's `bento_model` argument.
    Returns the Bento tag."""
    import subprocess
    import sys

    bentoml_cli = Path(sys.executable).with_name("bentoml")
    command = [
        str(bentoml_cli) if bentoml_cli.exists() else "bentoml",
        "build",
        "-f",
        str(Path(project_root) / "bentofile.yaml"),
        "--arg",
        f"bento_model={bento_model_tag}",
        "-o",
        "tag",
        str(Path(project_root) / "src"),
    ]
    done = subprocess.run(
        command,
        env={**os.environ, "BENTOML_HOME": bentoml_home, "BENTOML_DO_NOT_TRACK": "true"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    # `-o tag` prints `__tag__:<name>:<version>` as the last line.
    last = [line for line in done.stdout.splitlines() if line.strip()][-1]
    return last.removeprefix("__tag__:").strip()


def package_champion(
    tracking_config: TrackingConfig,
    package_config: PackageConfig,
    project_root: Path,
    out_path: Path,
) -> dict[str, Any]:
    """Import the champion as a Bento model, build the Bento, write `out_path`."""
    home = use_bentoml_home(package_config)
    tracking.configure_tracking(tracking_config, Path(project_root))
    with tempfile.TemporaryDirectory(prefix="mtrec-package-") as scratch:
        record, recommender, reward = download_champion(
            tracking_config, package_config.alias, Path(scratch)
        )
        metadata = {
            "registered_model": tracking_config.registered_model,
            "alias": package_config.alias,
            "registry_version": record["version"],
            "candidate": record.get("candidate"),
            "data_version": record.get("data_version"),
            "git_commit": record.get("git_commit"),
            "max_history": package_config.max_history,
            "max_items_per_request": package_config.max_items_per_request,
        }
        model_tag = import_bento_model(package_config.bento_model, recommender, reward, metadata)
    bento_tag = build_bento(Path(project_root), model_tag, home)
    summary = {
        "bento": bento_tag,
        "bento_model": model_tag,
        "bentoml_home": home,
        "has_reward_model": reward is not None,
        **metadata,
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
