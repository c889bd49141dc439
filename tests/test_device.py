"""The one device-setting resolver (`mtrec.device.resolve_device`)."""

from __future__ import annotations

import pytest
import torch

from mtrec.device import resolve_device


def test_auto_is_cuda_exactly_when_cuda_is_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected


def test_auto_without_cuda_is_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cpu_is_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_a_device_names_the_setting(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"recommender\.train\.device is .cuda.*no CUDA device"):
        resolve_device(name, "recommender.train.device")


def test_unknown_names_are_refused():
    with pytest.raises(RuntimeError):
        resolve_device("no-such-device")
