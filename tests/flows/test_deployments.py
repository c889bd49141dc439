"""prefect.yaml against a real `prefect server start`: deploy, read back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from helpers import free_port, stop_process, wait_ready

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_ready(f"{api}/health", server, home / "server.log", seconds=90)
        yield api, {**env, "PREFECT_API_URL": api}
    finally:
        stop_process(server)
        log.close()


def run_cli(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [PREFECT, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.mark.slow
def test_deploy_all_registers_nightly_schedule_and_on_demand(prefect_server, tmp_path):
    api, env = prefect_server
    # Deploy from a copy: `prefect deploy` may rewrite prefect.yaml it reads.
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
    shutil.copytree(ROOT / "flows", project / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    pool = spec["definitions"]["work_pools"]["process"]["name"]
    nightly_cron = spec["definitions"]["schedules"]["nightly"]["cron"]

    run_cli(["work-pool", "create", pool, "--type", "process"], env, project)
    run_cli(["--no-prompt", "deploy", "--all"], env | {"PWD": str(project)}, project)

    found = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
    by_name = {d["name"]: d for d in found}
    assert set(by_name) == {"nightly", "on-demand"}

    nightly = by_name["nightly"]
    assert nightly["work_pool_name"] == pool
    assert nightly["entrypoint"] == "flows/pipeline.py:mtrec_pipeline"
    assert nightly["parameters"] == {"project_dir": "."}
    schedules = nightly["schedules"]
    assert len(schedules) == 1
    assert schedules[0]["schedule"]["cron"] == nightly_cron
    assert schedules[0]["schedule"]["timezone"] == "UTC"
    assert schedules[0]["active"] is True
    # Runs execute in the checkout that deployed them.
    pull = nightly["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]
    assert pull["directory"] == str(project)
    # The flow's typed parameters reached the server's schema.
    assert "project_dir" in nightly["parameter_openapi_schema"]["properties"]

    on_demand = by_name["on-demand"]
    assert on_demand["schedules"] == []
    assert on_demand["parameters"] == {"project_dir": "."}

    # The scheduler has something to run: the nightly deployment is schedulable.
    flow = httpx.get(f"{api}/flows/{nightly['flow_id']}", timeout=10).json()
    assert flow["name"] == "mtrec-pipeline"
