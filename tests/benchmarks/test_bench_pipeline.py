"""benchmarks/bench_pipeline.py: per-stage wall, CPU and peak RSS of a DVC pipeline."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pipeline.py"

# Burns CPU for `seconds` in a grandchild (bash -> python, as dvc -> mtrec) and
# holds `mib` MiB resident.
WORK = (
    "import time; block = bytearray({mib} * 2**20); block[::4096] = b'x' * len(block[::4096]); "
    "end = time.process_time() + {seconds}\n"
    "while time.process_time() < end: pass"
)


def test_a_stage_counts_its_process_tree(tmp_path):
    bench = importlib.import_module("bench_pipeline")
    code = WORK.format(mib=200, seconds=0.4)
    argv = ["bash", "-c", f'"{sys.executable}" -c "{code}"; true']
    result = bench.run_stage(argv, tmp_path, {"PATH": "/usr/bin:/bin"}, tmp_path / "log")
    assert result["returncode"] == 0
    assert result["cpu_seconds"] >= 0.35  # the grandchild's CPU, not only bash's
    assert result["wall_seconds"] >= result["cpu_seconds"] * 0.5
    assert result["peak_rss_mib"] >= 200
    assert len(result["load_average_start"]) == len(result["load_average_end"]) == 3
    failed = bench.run_stage(["bash", "-c", "exit 3"], tmp_path, {}, tmp_path / "log2")
    assert failed["returncode"] == 3
    assert failed["cpu_seconds"] < 0.35


def test_every_stage_in_dvc_yaml_order(tmp_path):
    """A two-stage DVC project with a foreach stage: each member runs once, in
    dvc.yaml's order, under `dvc repro -s -f`, and the JSON says so."""
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    python = sys.executable
    (project / "dvc.yaml").write_text(
        "stages:\n"
        "  make:\n"
        "    foreach: [a, b]\n"
        "    do:\n"
        f"      cmd: {python} -c \"open('${{item}}.txt', 'w').write('${{item}}')\"\n"
        "      outs:\n"
        "        - ${item}.txt\n"
        "  join:\n"
        f"    cmd: {python} -c \"open('ab.txt', 'w').write(open('a.txt').read() + "
        "open('b.txt').read())\"\n"
        "    deps: [a.txt, b.txt]\n"
        "    outs: [ab.txt]\n"
    )
    out = tmp_path / "results" / "stages.json"
    subprocess.run(
        [sys.executable, str(BENCH), "--project", str(project), "--out", str(out)],
        check=True,
        cwd=tmp_path,
        env={
            "PATH": str(Path(python).parent) + ":/usr/bin:/bin",
            "HOME": str(tmp_path),
            "MTREC_NUM_THREADS": "1",
        },
    )
    report = json.loads(out.read_text())
    assert list(report["stages"]) == ["make@a", "make@b", "join"]
    assert (project / "ab.txt").read_text() == "ab"
    for name, stage in report["stages"].items():
        assert stage["returncode"] == 0
        assert stage["argv"] == ["dvc", "repro", "-s", "-f", name]
        assert stage["cpu_seconds"] > 0
    assert report["stages"]["join"]["cmd"].endswith("open('b.txt').read())\"")
    assert report["threads"]["MTREC_NUM_THREADS"] == "1"
    assert report["total"]["cpu_seconds"] == sum(
        stage["cpu_seconds"] for stage in report["stages"].values()
    )
    assert "load_average_1_5_15" in report["machine"]
