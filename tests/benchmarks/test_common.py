"""The helpers the benchmarks and the server tests share (no real server here)."""

import importlib
import socket
import subprocess
import sys

import pytest
from helpers import free_port, stop_process


@pytest.fixture(scope="module")
def common():
    return importlib.import_module("common")  # benchmarks/common.py, on sys.path via helpers


def test_free_port_can_be_bound():
    port = free_port()
    assert 1024 <= port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_wait_for_http_reports_a_server_that_exited(common, tmp_path):
    log = tmp_path / "server.log"
    log.write_text("boom: address in use\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    with pytest.raises(RuntimeError, match=r"exited with 3(.|\n)*boom: address in use"):
        common.wait_for_http(f"http://127.0.0.1:{free_port()}/readyz", process, log, seconds=30)


def test_stop_process_ends_a_running_process():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(process, seconds=10)
    assert process.poll() is not None


def test_machine_info_records_threads_and_load(common):
    info = common.machine_info(threads=2, device="cpu")
    assert info["torch_threads"] == 2 and info["device"] == "cpu"
    assert len(info["load_average_1_5_15"]) == 3
    assert common.peak_rss_mib() > 0
