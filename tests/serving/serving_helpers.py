"""Starting `bentoml serve` of a built Bento on loopback, for the serving tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from helpers import free_port, stop_process, wait_ready

BENTOML = str(Path(sys.executable).with_name("bentoml"))
# The request limits the test Bento is packaged with (the schema must declare them).
MAX_HISTORY = 20


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    process: subprocess.Popen


@contextmanager
def serve_bento(
    bento: str, log: Path, env: dict[str, str] | None = None, seconds: float = 120
) -> Iterator[Server]:
    """`bentoml serve <bento>` on a free 127.0.0.1 port until the block ends."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "MTREC_BENTO_MODEL"}
    environment.update(env or {})
    with log.open("w") as out:
        process = subprocess.Popen(
            [BENTOML, "serve", bento, "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{url}/readyz", process, log, seconds=seconds)
            yield Server(url, log, process)
        finally:
            stop_process(process)
