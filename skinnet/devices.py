"""Which torch device to run on: the one place a device name is read and checked (training and inference)."""

from __future__ import annotations

import torch

from skinnet.config import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; any other value is passed to ``torch.device``.

    Raises:
        ConfigError: ``name`` is not a device, or names a CUDA device that this machine or torch build lacks.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", a build without CUDA"
        raise ConfigError(f"device {name!r}: no CUDA GPU is usable here (torch {torch.__version__}{build}); "
                          "use cpu, or install a CUDA build of torch (README, 'GPU users')")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
