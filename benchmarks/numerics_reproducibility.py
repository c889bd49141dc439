"""Which settings change the bits of a CPU computation (why every stage pins them).

Runs one small computation (a torch matmul + softmax, a GRU forward and
backward, numpy matmul and exp: the operations the stages are made of) in new
processes under each setting, twice, and records an md5 of the results. Two
settings that give different md5s would make two machines disagree on
dvc.lock; the stage settings (`mtrec.cli.reproducible_numerics`) fix them.

    python benchmarks/numerics_reproducibility.py \
        --out benchmarks/results/numerics_reproducibility.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import machine_info

PROBE = r"""
import hashlib, sys
import numpy as np
import torch
torch.manual_seed(0)
x = torch.randn(4096, 257)
w = torch.randn(257, 129, requires_grad=True)
gru = torch.nn.GRU(64, 128, batch_first=True)
sequences = torch.randn(512, 50, 64)
scores = (x @ w).softmax(-1).sum(0)
hidden, _ = gru(sequences)
(scores.sum() + hidden.pow(2).mean()).backward()
rng = np.random.default_rng(0)
a, b = rng.standard_normal((700, 300)), rng.standard_normal((300, 500))
digest = hashlib.md5()
for part in (scores.detach().numpy(), hidden.detach().numpy(), w.grad.numpy(), a @ b, np.exp(a)):
    digest.update(part.tobytes())
print(digest.hexdigest())
"""

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def probe(threads: int, pinned: bool) -> str:
    from mtrec.cli import X86_REPRODUCIBLE_KERNELS

    env = {k: v for k, v in os.environ.items() if k not in X86_REPRODUCIBLE_KERNELS}
    env |= {name: str(threads) for name in THREAD_VARS}
    if pinned:
        env |= X86_REPRODUCIBLE_KERNELS
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = {}
    for pinned in (False, True):
        for threads in (1, 2):
            name = f"{'avx2-pinned' if pinned else 'native-kernels'}, {threads} thread(s)"
            runs[name] = [probe(threads, pinned) for _ in range(2)]
            print(name, runs[name], flush=True)
    report = {
        "machine": machine_info(threads=0, device="cpu")
        | {"cpu_model": _cpu_model(), "command": " ".join(sys.argv)},
        "note": "torch_threads is per setting (in the names); the probe runs in new processes",
        "md5_per_setting_two_runs": runs,
        "same_bits_run_to_run": all(a == b for a, b in runs.values()),
        "threads_change_bits": runs["native-kernels, 1 thread(s)"][0]
        != runs["native-kernels, 2 thread(s)"][0],
        "kernels_change_bits": runs["native-kernels, 1 thread(s)"][0]
        != runs["avx2-pinned, 1 thread(s)"][0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
