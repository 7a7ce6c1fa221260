"""The model shipped with the package (see MODEL_CARD.md beside this file), and its int8 ONNX copy."""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL = Path(__file__).parent / "skinnet_isic2017.safetensors"
MODEL_CARD = Path(__file__).parent / "MODEL_CARD.md"
# The shipped model quantised to int8 by `skinnet export --int8` (scripts/make_packaged_int8.sh), calibrated on
# training images; its metadata records the SHA-256 of SHIPPED_MODEL (skinnet.inference.quantize.packaged_int8).
PACKAGED_INT8 = Path(__file__).parent / "skinnet_isic2017.int8.onnx"


def default_model_path() -> Path | None:
    """The shipped model file, or ``None`` where this install has none."""
    return SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None


def is_shipped_model(path: str | Path | None) -> bool:
    """Whether ``path`` is the shipped model file itself (not a copy of it elsewhere)."""
    try:
        return path is not None and SHIPPED_MODEL.is_file() and Path(path).resolve() == SHIPPED_MODEL.resolve()
    except OSError:
        return False


def packaged_int8_path() -> Path | None:
    """The shipped model's packaged int8 ONNX copy, or ``None`` where this install has none."""
    return PACKAGED_INT8 if PACKAGED_INT8.is_file() else None
