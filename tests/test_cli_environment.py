"""The environment every mtrec command sets before numpy or torch start."""

from __future__ import annotations

import os

import pytest
import torch

from mtrec.cli import ONEDNN_PRIMITIVE_CACHE, reproducible_numerics


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The callback sets torch's thread count when torch is loaded: restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_onednn_primitive_cache_is_bounded_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    reproducible_numerics()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == ONEDNN_PRIMITIVE_CACHE == "0"

    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    reproducible_numerics()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


def test_thread_count_follows_mtrec_num_threads(monkeypatch):
    monkeypatch.setenv("MTREC_NUM_THREADS", "1")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.setenv(name, "7")
    reproducible_numerics()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert os.environ[name] == "1"
