"""Helpers the benchmark scripts share (and the tests that start real servers).

The scripts run as files (`python benchmarks/bench_training.py`), so they
import this module as `common` from their own folder; a test puts
`benchmarks/` on sys.path to do the same.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


def peak_rss_mib() -> float:
    """Peak resident memory of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_info(threads: int, device: str) -> dict[str, Any]:
    """What a timing depends on, recorded beside it."""
    import torch

    return {
        "device": device,
        "torch_threads": threads,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        # Other jobs on a shared machine slow both sides: keep the load beside the timing.
        "load_average_1_5_15": list(os.getloadavg()),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    """Poll GET `url` until it answers 200; RuntimeError (with the end of the
    server's `log`) if `process` exits first or `seconds` pass."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            reason = f"exited with {process.returncode}"
        elif time.monotonic() > deadline:
            reason = f"not ready in {seconds:.0f} s"
        else:
            time.sleep(0.5)
            continue
        tail = Path(log).read_text(errors="replace")[-4000:] if Path(log).exists() else ""
        raise RuntimeError(f"server for {url} {reason}; log {log}:\n{tail}")


def stop_process(process: subprocess.Popen, seconds: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `seconds`."""
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()


def deep_update(base: dict, overrides: dict) -> dict:
    """Merge `overrides` into the nested dict `base` in place (a params.yaml and
    the keys a run changes); returns `base`."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base
