"""The one place a device setting (`auto | cpu | cuda`) becomes a torch.device."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device = "auto", setting: str = "device") -> torch.device:
    """`auto`: CUDA when available, else CPU; `cpu` / `cuda` (or a torch.device) as
    given. Asking for CUDA where there is none raises, naming `setting` (the
    params.yaml key the value came from), rather than failing later inside torch."""
    if isinstance(name, torch.device):
        name_str = str(name)
        device = name
    else:
        name_str = name
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{setting} is {name_str!r} but no CUDA device is available")
    return device
