"""benchmarks/behaviour_probe.py: behaviour-only features, and the probe end to end."""

import importlib
import json
import subprocess
import sys

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import numpy as np
import pytest

from mtrec.data.processed import load_processed
from mtrec.reward.mdp import concat_splits


@pytest.fixture(scope="module")
def probe():
    return importlib.import_module("behaviour_probe")


def test_features_never_see_the_labels(probe, toy_processed_dir):
    processed = load_processed(toy_processed_dir)
    log = concat_splits({"train": processed.train, "valid": processed.valid})
    features = probe.behaviour_features(log, processed.n_items, 3600)
    # Scrambling the satisfaction columns (handed to it) changes nothing: not read.
    scrambled = log.assign(
        rating=log["rating"].sample(frac=1, random_state=0).to_numpy(),
        satisfied=1.0 - log["satisfied"],
    )
    assert not scrambled["rating"].equals(log["rating"])
    assert features.equals(probe.behaviour_features(scrambled, processed.n_items, 3600))
    assert len(features) == len(log)
    assert not any("rating" in c or "satisf" in c for c in features.columns)


def test_the_probe_writes_every_family_and_the_item_identity_bound(tmp_path, toy_processed_dir):
    out = tmp_path / "probe.json"
    script = helpers.BENCHMARKS / "behaviour_probe.py"
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--processed",
            str(toy_processed_dir),
            "--seeds",
            "0",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    result = json.loads(out.read_text())
    assert result["label"] == "rating_4_vs_2"
    assert set(result["probes"]) >= {
        "behaviour_probe",
        "item_statistics_probe",
        "user_statistics_probe",
        "item_identity_label_mean",
    }
    # The toy ratings are the item's parity: the item identity knows them exactly.
    assert result["probes"]["item_identity_label_mean"]["test"] > 0.95
    for family in ("behaviour_probe", "item_statistics_probe"):
        assert np.isfinite(result["probes"][family]["test"]["mean"])
