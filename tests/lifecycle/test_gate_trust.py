"""The gate against a hostile registry and a careless operator (issue 12), on real
MLflow with SQLite: a champion whose evidence is missing, NaN, malformed or from
another data version never loses to a candidate by default; the registered
model is the seed the gate names; the tracking URI's secrets and the original
project's folder stay out of reach."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import gate_candidate, write_toy_processed

from mtrec.config import GateConfig, TrackingConfig
from mtrec.data.processed import load_processed
from mtrec.lifecycle import registry, tracking
from mtrec.lifecycle.steps import run_gate

N_USERS = 200
# The registry tags the gate writes and reads (the contract of mtrec.lifecycle.registry).
METRICS_TAG = "mtrec.metrics_mean"
VALID_SEEDS_TAG = "mtrec.valid_seeds"
PER_USER_TAG = "mtrec.valid_per_user"
EVIDENCE_SPLIT_TAG = "mtrec.evidence_split"


def ranks(seed: int, shift: int = 0, n_users: int = N_USERS) -> np.ndarray:
    base = np.random.default_rng(seed).integers(1, 30, n_users)
    return np.maximum(1, base - shift).astype(float)


def write_report(path: Path, tiny_models=None, shifts=None, satisfied=None, n_users=N_USERS):
    """sasrec-none and sasrec-mtrec; mtrec's seeds move every target up by
    `shifts[seed]` (default a clear gain). Model folders only with `tiny_models`."""
    shifts = shifts or {0: 8, 1: 6}
    candidates = {}
    for name, guidance, shift in (
        ("sasrec-none", "none", {0: 0, 1: 0}),
        ("sasrec-mtrec", "mtrec", shifts),
    ):
        candidates[name] = gate_candidate(
            "sasrec",
            guidance,
            {seed: ranks(seed, shift[seed], n_users) for seed in (0, 1)},
            satisfied,
            extra_by_seed={seed: {"AUC": 0.8} for seed in (0, 1)},
            model_dirs=tiny_models[name] if tiny_models else None,
        )
    path.write_text(json.dumps({"split": "test", "candidates": candidates}))
    return path


def rule(decision, name, rule_name, metric="NDCG_p@10"):
    rules = decision["candidates"][name]["rules"]
    return next(r for r in rules if r["rule"] == rule_name and r["metric"] == metric)


@pytest.fixture
def restore_tracking(mlflow_tracking_uri):
    yield
    mlflow.set_tracking_uri(mlflow_tracking_uri)
    mlflow.set_registry_uri(mlflow_tracking_uri)


def gate_once(report: dict, tmp_path: Path, gate_config: GateConfig, uri: str, name: str):
    """One gate run with no champion and no model folders (nothing is logged as a
    model, so nothing is registered: `winner` is the decision)."""
    config = TrackingConfig(tracking_uri=uri, experiment=name, registered_model=name)
    processed = tmp_path / "processed"
    processed.mkdir(exist_ok=True)
    (processed / "meta.json").write_text("{}")
    (tmp_path / "metrics.json").write_text(json.dumps(report))
    return run_gate(
        tmp_path / "metrics.json", tmp_path / "gate.json", gate_config, config, tmp_path, processed
    )


def two_candidates(mtrec_ranks, satisfied=None) -> dict:
    return {
        "split": "test",
        "candidates": {
            name: gate_candidate(
                "sasrec",
                guidance,
                {seed: rank_fn(seed) for seed in (0, 1)},
                satisfied,
                extra_by_seed={seed: {"AUC": 0.8} for seed in (0, 1)},
            )
            for name, guidance, rank_fn in (
                ("sasrec-none", "none", lambda seed: ranks(seed)),
                ("sasrec-mtrec", "mtrec", mtrec_ranks),
            )
        },
    }


def test_the_gate_ranks_on_validation_and_says_so(mlflow_tracking_uri, tmp_path):
    # Validation: mtrec's ranks are the base's, shuffled over users (no gain).
    # Test: mtrec looks three times better. The test split must not decide.
    report = two_candidates(lambda seed: np.random.default_rng(9).permutation(ranks(seed)))
    mtrec = report["candidates"]["sasrec-mtrec"]
    for metrics in [*mtrec["seeds"].values(), mtrec["mean"]]:
        metrics["NDCG_p@10"] *= 3
    decision = gate_once(report, tmp_path, GateConfig(), mlflow_tracking_uri, "gate-valid-test")
    assert decision["winner"] == "sasrec-none"  # first promotion: the base
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert gate["selection_split"] == "valid"
    assert rule(gate, "sasrec-mtrec", "beats_base")["split"] == "valid"


def test_a_mean_gain_within_the_noise_is_not_promoted(mlflow_tracking_uri, tmp_path):
    # Seed 0 gains a lot, seed 1 loses: the mean gain clears the old fixed +1%,
    # the paired interval over seeds and users does not clear zero.
    def mtrec(seed):
        return ranks(seed, 8) if seed == 0 else np.minimum(30.0, ranks(seed) + 3)

    config = GateConfig(unguided_eligible=False)
    decision = gate_once(two_candidates(mtrec), tmp_path, config, mlflow_tracking_uri, "gate-noise")
    assert decision["winner"] is None
    beats = rule(decision, "sasrec-mtrec", "beats_base")
    assert beats["relative_gain"] > 0.01
    assert beats["interval"]["lower"] < 0 < beats["interval"]["upper"]
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert rule(gate, "sasrec-mtrec", "beats_base")["interval"] == beats["interval"]


def test_a_guard_where_lower_is_better_is_not_inverted(mlflow_tracking_uri, tmp_path):
    satisfied = [float(u % 2) for u in range(N_USERS)]

    def mtrec(seed):
        r = ranks(seed).copy()
        r[1::2] = np.maximum(1, r[1::2] - 8)  # satisfying targets up: NDCG_p@10 gains
        r[::2] = r[::2] + 20  # unsatisfying targets out of the top 10: HR_n@10 falls
        return r

    config = GateConfig(guard_metrics=("HR_n@10",), unguided_eligible=False)
    report = two_candidates(mtrec, satisfied)
    decision = gate_once(report, tmp_path, config, mlflow_tracking_uri, "gate-direction")
    assert decision["winner"] == "sasrec-mtrec", decision["reason"]
    guard = rule(decision, "sasrec-mtrec", "guard_vs_base", "HR_n@10")
    assert guard["direction"] == "lower" and guard["status"] == "pass", guard["message"]


@pytest.fixture(scope="module")
def promoted(mlflow_tracking_uri, tiny_models, tmp_path_factory):
    """A first promotion through the gate: (config, project folder, processed
    folder, decision). sasrec-mtrec's seed 1 gains less than seed 0."""
    root = tmp_path_factory.mktemp("trust")
    config = TrackingConfig(
        tracking_uri=mlflow_tracking_uri,
        experiment="gate-trust-test",
        registered_model="mtrec-recommender-trust-test",
    )
    processed = root / "processed"
    processed.mkdir()
    (processed / "meta.json").write_text("{}")
    metrics = write_report(root / "metrics.json", tiny_models, shifts={0: 9, 1: 4})
    decision = run_gate(
        metrics, root / "gate.json", GateConfig(), config, root, processed, tiny_models["models"]
    )
    assert decision["action"] == "promote" and decision["winner"] == "sasrec-mtrec"
    return config, root, processed, decision


def test_the_registered_model_is_the_seed_the_gate_names(promoted, tiny_models, tmp_path):
    from mtrec.lifecycle.package import download_champion

    config, root, _, decision = promoted
    # The registry holds seed 1's model: sasrec-mtrec's worse seed on validation.
    record, recommender, _ = download_champion(config, registry.CHAMPION, tmp_path)
    registered = (recommender / "weights.pt").read_bytes()
    assert registered == (tiny_models["sasrec-mtrec"][1] / "weights.pt").read_bytes()
    assert registered != (tiny_models["sasrec-mtrec"][0] / "weights.pt").read_bytes()
    assert record["seed"] == "1"
    verdict = decision["candidates"]["sasrec-mtrec"]
    assert verdict["registered_seed"] == "1"  # the lower median of 2 seeds: the worse one
    gate = json.loads((root / "gate.json").read_text())
    assert gate["selection_split"] == "valid"
    assert gate["registry"]["seed"] == "1" and "lower median" in gate["registry"]["seed_rule"]
    beats = rule(gate, "sasrec-mtrec", "beats_base")
    assert beats["interval"]["lower"] > 0 and beats["interval"]["level"] == 0.95
    assert (METRICS_TAG, VALID_SEEDS_TAG, PER_USER_TAG, EVIDENCE_SPLIT_TAG) == (
        registry.METRICS_TAG,
        registry.VALID_SEEDS_TAG,
        registry.PER_USER_TAG,
        registry.EVIDENCE_SPLIT_TAG,
    )
    assert record["tags"][EVIDENCE_SPLIT_TAG] == "valid"
    assert set(json.loads(record["tags"][VALID_SEEDS_TAG])) == {"0", "1"}


def _hand_set_champion(config, promoted_version: str, edit) -> str:
    """A new version of the promoted model with tags `edit(tags)`, aliased
    `champion` by hand (what an operator can do in the MLflow UI)."""
    client = mlflow.MlflowClient()
    source = client.get_model_version(config.registered_model, promoted_version)
    tags = edit(dict(source.tags))
    version = client.create_model_version(
        config.registered_model, source.source, run_id=source.run_id, tags=tags
    )
    client.set_registered_model_alias(config.registered_model, "champion", version.version)
    return str(version.version)


def _nan_seeds(tags):
    """NaN for the primary in every place the champion's evidence lives."""
    means = json.loads(tags[METRICS_TAG]) | {"NDCG_p@10": float("nan")}
    edited = tags | {METRICS_TAG: json.dumps(means)}
    if VALID_SEEDS_TAG in tags:
        seeds = json.loads(tags[VALID_SEEDS_TAG])
        for metrics in seeds.values():
            metrics["NDCG_p@10"] = float("nan")
        edited[VALID_SEEDS_TAG] = json.dumps(seeds)
    return edited


def _without(*keys):
    return lambda tags: {k: v for k, v in tags.items() if k not in keys}


EDITS = {
    # An alias set by hand on a bare version: no evidence, no data version.
    "no tags": (lambda tags: {}, "could not be re-scored"),
    "NaN": (_nan_seeds, "NDCG_p@10 is nan"),
    "malformed": (
        lambda tags: tags | {METRICS_TAG: '{"NDCG_p@10": 0.1', VALID_SEEDS_TAG: "{oops"},
        "is not valid JSON",
    ),
    "no per-user ranks": (_without(PER_USER_TAG), "mtrec.valid_per_user is missing"),
    "judged on test": (
        _without(EVIDENCE_SPLIT_TAG),
        "not known to be validation metrics",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(EDITS))
def test_a_champion_without_usable_evidence_is_never_replaced(promoted, kind):
    config, root, processed, first = promoted
    edit, reason = EDITS[kind]
    tracking.configure_tracking(config, root)
    hand = _hand_set_champion(config, first["registry"]["version"], edit)
    metrics = write_report(root / f"metrics-{kind}.json", shifts={0: 12, 1: 12})
    gate_path = root / f"gate-{kind}.json"
    decision = run_gate(metrics, gate_path, GateConfig(), config, root, processed)  # no crash
    assert decision["winner"] is None, decision["reason"]
    for name in ("sasrec-none", "sasrec-mtrec"):
        beats = rule(decision, name, "beats_champion")
        assert beats["status"] == "fail" and reason in beats["message"], beats["message"]
    assert registry.champion_record(config.registered_model)["version"] == hand
    assert reason in gate_path.read_text()


def _processed_with_catalogue(folder: Path, item_ids: list[str]) -> Path:
    write_toy_processed(folder, n_items=len(item_ids))
    items = pd.read_parquet(folder / "items.parquet")
    items["item_id"] = item_ids
    items.to_parquet(folder / "items.parquet", index=False)
    return folder


@pytest.mark.slow
def test_a_champion_from_another_data_version_is_re_scored_or_blocks(promoted, tmp_path):
    config, root, _, first = promoted
    tracking.configure_tracking(config, root)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(
        config.registered_model, "champion", first["registry"]["version"]
    )
    # New data whose catalogue the champion does not know: it cannot be re-scored.
    other = write_toy_processed(tmp_path / "other")
    targets = load_processed(other).ranking_targets("valid")
    satisfied = targets["satisfied"].fillna(0.0).tolist()
    metrics = write_report(tmp_path / "m1.json", satisfied=satisfied, n_users=len(targets))
    decision = run_gate(metrics, tmp_path / "g1.json", GateConfig(), config, root, other)
    assert decision["data_version"] != first["data_version"]
    assert decision["winner"] is None
    beats = rule(decision, "sasrec-mtrec", "beats_champion")
    assert "could not be re-scored" in beats["message"] and "catalogue" in beats["message"]

    # New data with the champion's catalogue (m1..m30): re-scored on its validation users.
    same = _processed_with_catalogue(tmp_path / "same", [f"m{i}" for i in range(1, 31)])
    targets = load_processed(same).ranking_targets("valid")
    assert targets["user_idx"].tolist() == list(range(1, len(targets) + 1))
    satisfied = targets["satisfied"].tolist()
    metrics = tmp_path / "m2.json"
    report = {"split": "test", "candidates": {}}
    for name, guidance, value in (("sasrec-none", "none", 1.0), ("sasrec-mtrec", "mtrec", 1.0)):
        report["candidates"][name] = gate_candidate(
            "sasrec",
            guidance,
            {seed: np.full(len(targets), value) for seed in (0, 1)},  # every target first
            satisfied,
            extra_by_seed={seed: {"AUC": 0.99} for seed in (0, 1)},
        )
    metrics.write_text(json.dumps(report))
    decision = run_gate(metrics, tmp_path / "g2.json", GateConfig(), config, root, same)
    assert decision["champion"]["evidence"].startswith("re-scored on the current data")
    assert decision["champion"]["fixed_model"] is True
    beats = rule(decision, "sasrec-none", "beats_champion")
    assert beats["seed_pairs"] == [["0", "1"], ["1", "1"]]  # one model vs every seed
    assert beats["interval"]["lower"] > 0, beats["message"]
    assert decision["winner"] == "sasrec-none"


def test_public_tracking_uri_drops_credentials(tmp_path):
    uri = "https://alice:s3cret@mlflow.example.com:8443/api?token=s3cret#x"
    assert tracking.public_tracking_uri(uri) == "https://mlflow.example.com:8443/api"
    inside = f"sqlite:///{tmp_path / 'mlflow.db'}?access_token=s3cret"
    assert tracking.public_tracking_uri(inside, tmp_path) == "sqlite:///mlflow.db"
    assert tracking.public_tracking_uri("databricks://scope:prefix") == "databricks://scope"


@pytest.mark.slow
def test_the_tracking_uri_secret_is_never_written(tiny_models, tmp_path, restore_tracking):
    secret_uri = f"sqlite:///{tmp_path / 'mlflow.db'}?uri=true&access_token=s3cret"
    config = TrackingConfig(tracking_uri=secret_uri, experiment="secret", registered_model="s")
    processed = tmp_path / "processed"
    processed.mkdir()
    (processed / "meta.json").write_text("{}")
    metrics = write_report(tmp_path / "metrics.json", tiny_models)
    gate_path = tmp_path / "reports" / "gate.json"
    decision = run_gate(metrics, gate_path, GateConfig(), config, tmp_path, processed)
    assert decision["action"] == "promote"
    assert "s3cret" not in gate_path.read_text()
    artifacts = [p for p in (tmp_path / "mlartifacts").rglob("*") if p.is_file()]
    assert any(p.name == "gate.json" for p in artifacts)
    for path in artifacts:
        assert b"s3cret" not in path.read_bytes(), path


@pytest.mark.slow
def test_a_copied_project_writes_into_its_own_folder(
    tiny_models, tmp_path, monkeypatch, restore_tracking
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the project's own mlflow.db
    original = tmp_path / "original"
    (original / "processed").mkdir(parents=True)
    (original / "processed" / "meta.json").write_text("{}")
    config = TrackingConfig(experiment="copied", registered_model="copied-model")
    write_report(original / "metrics.json", tiny_models)

    def gate(project: Path) -> dict:
        return run_gate(
            project / "metrics.json",
            project / "gate.json",
            GateConfig(),
            config,
            project,
            project / "processed",
        )

    assert gate(original)["action"] == "promote"
    before = {p: p.stat().st_mtime_ns for p in (original / "mlartifacts").rglob("*")}
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)

    decision = gate(copy)
    after = {p: p.stat().st_mtime_ns for p in (original / "mlartifacts").rglob("*")}
    assert after == before  # nothing new, nothing touched in the original
    client = mlflow.MlflowClient(tracking.resolve_tracking_uri(config, copy))
    run = client.get_run(decision["mlflow"]["pipeline_run_id"])
    assert run.info.artifact_uri.startswith((copy / "mlartifacts").resolve().as_uri())
    assert (copy / "mlartifacts").exists()
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == (copy / "mlartifacts").resolve().as_uri()
    assert json.loads((copy / "gate.json").read_text())["mlflow"]["tracking_uri"] == (
        "sqlite:///mlflow.db"
    )
