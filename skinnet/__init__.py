"""SkinNet: skin lesion segmentation in dermoscopy images (Vesal, Ravikumar, Maier, 2018).

The names below are imported on first use (PEP 562), so that ``import skinnet`` and ``skinnet --help`` do
not load torch: ``from skinnet import Segmenter`` works as before.
"""

from __future__ import annotations

import importlib
from typing import Any

import skinnet._opencv  # noqa: F401 - first, so that loading OpenCV leaves os.environ unchanged
from skinnet.version import __version__ as __version__  # re-exported

# name -> the module that defines it
_EXPORTS = {
    "Config": "skinnet.config",
    "load_config": "skinnet.config",
    "read_image": "skinnet.data.io",
    "Ensemble": "skinnet.inference.ensemble",
    "Segmenter": "skinnet.inference.segmenter",
    "SoftDiceLoss": "skinnet.losses",
    "soft_dice_loss": "skinnet.losses",
    "image_metrics": "skinnet.metrics",
    "mean_metrics": "skinnet.metrics",
    "SkinNet": "skinnet.networks",
    "UNet": "skinnet.networks",
    "build_model": "skinnet.networks",
    "load_model": "skinnet.networks.files",
    "save_weights": "skinnet.networks.files",
}
__all__ = sorted(["__version__", *_EXPORTS])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'skinnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
