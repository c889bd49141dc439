"""benchmarks/lock_diff.py: two dvc.lock files compared hash by hash."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)


def lock(model_md5: str, gate_md5: str) -> dict:
    return {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "mtrec train",
                "params": {"params.yaml": {"seed": 0}},
                "outs": [{"path": "models/m", "hash": "md5", "md5": model_md5}],
            },
            "gate": {
                "cmd": "mtrec gate",
                "deps": [{"path": "models/m", "hash": "md5", "md5": model_md5}],
                "outs": [{"path": "reports/gate.json", "hash": "md5", "md5": gate_md5}],
            },
        },
    }


def test_only_the_expected_paths_may_differ():
    lock_diff = importlib.import_module("lock_diff")
    same_model = lock_diff.compare(lock("a1", "g1"), lock("a1", "g2"), lock_diff.EXPECTED)
    assert same_model["identical_except_expected"]
    assert [d["path"] for d in same_model["different"]] == ["reports/gate.json"]
    assert same_model["n_identical"] == 2
    other_model = lock_diff.compare(lock("a1", "g1"), lock("b2", "g1"), lock_diff.EXPECTED)
    assert not other_model["identical_except_expected"]
    assert {d["path"] for d in other_model["different"]} == {"models/m"}
    changed_params = lock("a1", "g1")
    changed_params["stages"]["train"]["params"]["params.yaml"]["seed"] = 1
    result = lock_diff.compare(lock("a1", "g1"), changed_params, lock_diff.EXPECTED)
    assert result["stages_with_different_params"] == ["train"]
    assert not result["identical_except_expected"]


def test_outs_only_ignores_code_deps():
    lock_diff = importlib.import_module("lock_diff")
    a, b = lock("a1", "g1"), lock("a1", "g1")
    b["stages"]["gate"]["deps"].append({"path": "src/new.py", "hash": "md5", "md5": "x"})
    assert not lock_diff.compare(a, b, lock_diff.EXPECTED)["identical_except_expected"]
    assert lock_diff.compare(a, b, lock_diff.EXPECTED, ("outs",))["identical_except_expected"]
