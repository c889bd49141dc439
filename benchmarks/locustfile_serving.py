"""The Locust load of benchmarks/bench_serving.py: a headless run at one user count.

    python benchmarks/locustfile_serving.py --host http://127.0.0.1:3000 \
        --bodies bodies.json --users 32 --warmup 3 --duration 20 --out level.json

Run as its own process by the benchmark (importing locust monkey-patches the
process with gevent, so nothing else imports this file). Locust's library API
(`Environment`, local runner) rather than its CLI, so the statistics cover the
measured window only: all users start at once, run `--warmup` seconds, the
statistics are reset, and the next `--duration` seconds are what is written.

Each user is a closed loop: POST /recommend with a body drawn (seeded per user)
from `--bodies` (a JSON list), no think time, one keep-alive connection
(FastHttpUser). Requests are named by status ("/recommend 200", "/recommend
429", ...) so served answers and refusals are kept apart; anything but 200 is
a failure. After a refusal (429/503) a user waits `Retry-After` seconds (or
`--refusal-backoff` when the answer has none), as a well-behaved client does;
`--refusal-backoff 0` retries at once (a storm: every refusal costs the server
a request's parsing). Also written: the generator's own CPU seconds in the window (it
shares the machine with the server) and,
with `--server-pid`, the server's.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, task
from locust.env import Environment

PERCENTILES = (0.5, 0.95, 0.99)
BODIES: list[dict] = []  # filled from --bodies before the users start
REFUSAL_BACKOFF_S = [1.0]  # set from --refusal-backoff
_SEEDS = iter(range(10**9))


class RecommendUser(FastHttpUser):
    wait_time = constant(0)
    network_timeout = 60.0
    connection_timeout = 60.0

    def on_start(self) -> None:
        self.rng = random.Random(next(_SEEDS))

    @task
    def recommend(self) -> None:
        body = self.rng.choice(BODIES)
        with self.client.post("/recommend", json=body, catch_response=True) as response:
            status = response.status_code
            response.request_meta["name"] = f"/recommend {status}"
            if status == 200:
                response.success()
            else:
                response.failure(f"HTTP {status}")
        if status in (429, 503) and REFUSAL_BACKOFF_S[0] > 0:
            try:
                wait = float(response.headers.get("retry-after") or REFUSAL_BACKOFF_S[0])
            except ValueError:
                wait = REFUSAL_BACKOFF_S[0]
            gevent.sleep(min(wait, 10.0))


def summary(entry, seconds: float) -> dict:
    out = {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "requests_per_s": entry.num_requests / seconds,
        "mean_ms": entry.avg_response_time,
        "max_ms": entry.max_response_time,
    }
    for level in PERCENTILES:
        value = entry.get_response_time_percentile(level) if entry.num_requests else None
        out[f"p{round(level * 100)}_ms"] = value
    return out


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds of the server's process tree so far (None without a pid)."""
    if pid is None:
        return None
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--server-pid", type=int, help="also record the server's CPU seconds")
    parser.add_argument("--refusal-backoff", type=float, default=1.0)
    args = parser.parse_args()
    if not (1 <= args.users <= 512 and 0 < args.duration <= 300 and 0 <= args.warmup <= 60):
        parser.error("bounded load: 1-512 users, at most 300 s, warm-up at most 60 s")
    BODIES[:] = json.loads(args.bodies.read_text())
    REFUSAL_BACKOFF_S[0] = args.refusal_backoff

    env = Environment(user_classes=[RecommendUser], host=args.host)
    runner = env.create_local_runner()
    runner.start(args.users, spawn_rate=args.users)
    gevent.sleep(args.warmup)
    env.stats.reset_all()
    began, cpu_began = time.perf_counter(), cpu_seconds()
    server_began = server_cpu_seconds(args.server_pid)
    gevent.sleep(args.duration)
    seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu_began
    server_end = server_cpu_seconds(args.server_pid)
    by_name = {name: summary(entry, seconds) for (name, _), entry in env.stats.entries.items()}
    total = summary(env.stats.total, seconds)
    runner.quit()
    report = {
        "users": args.users,
        "refusal_backoff_s": args.refusal_backoff,
        "seconds": seconds,
        "all": total,
        "by_status": {name.rsplit(" ", 1)[-1]: stats for name, stats in sorted(by_name.items())},
        "generator_cpu_s": cpu,
        "server_cpu_s": None if server_began is None else server_end - server_began,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
