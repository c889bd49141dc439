"""The table arithmetic of benchmarks/virtual_taobao.py (no training here)."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path: the script imports `common`)
import pytest


def run(algorithm, reward, seed, ctr, steps=50_000):
    return {
        "algorithm": algorithm,
        "reward": reward,
        "seed": seed,
        "ctr": ctr,
        "session_ctr": ctr,
        "env_steps": steps,
        "kappa": 0.2,
        "seconds_per_100k_steps": 100.0 + seed,
        "cpu_seconds_per_100k_steps": 50.0,
        "sac_train_freq": 4,
        "sac_gradient_steps": 1,
    }


def test_rows_are_mean_and_std_over_seeds_with_paired_gains():
    bench = importlib.import_module("virtual_taobao")
    runs = [run("ppo", "env", s, c) for s, c in ((0, 0.2), (1, 0.3), (2, 0.4))]
    runs += [run("ppo", "env+mental", s, c) for s, c in ((0, 0.25), (1, 0.28), (2, 0.5))]
    runs += [run("sac", "env", 0, 0.1, steps=20_000)]
    table = bench.build_table(runs)
    rows = {(r["algorithm"], r["reward"]): r for r in table["rows"]}
    ppo = rows[("ppo", "env")]
    assert ppo["ctr_mean"] == pytest.approx(0.3)
    assert ppo["ctr_std"] == pytest.approx(0.1)
    assert ppo["seeds"] == [0, 1, 2] and ppo["paper_ctr"] == 0.5435
    assert ppo["seconds_per_100k_steps"] == pytest.approx(101.0)
    assert rows[("ppo", "env+mental")]["paper_ctr"] == 0.678
    assert rows[("sac", "env")]["ctr_std"] is None  # one seed: no spread to report
    (paired,) = [p for p in table["paired_guided_minus_env"] if p["algorithm"] == "ppo"]
    assert paired["ctr_gain_mean"] == pytest.approx((0.05 - 0.02 + 0.1) / 3)
    assert paired["guided_better_on_seeds"] == 2
    assert [p["algorithm"] for p in table["paired_guided_minus_env"]] == ["ppo"]
