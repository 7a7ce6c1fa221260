"""The model shipped with the package (see MODEL_CARD.md beside this file)."""

from __future__ import annotations

from pathlib import Path

SHIPPED_MODEL = Path(__file__).parent / "skinnet_isic2017.safetensors"
MODEL_CARD = Path(__file__).parent / "MODEL_CARD.md"


def default_model_path() -> Path | None:
    """The shipped model file, or ``None`` where this install has none."""
    return SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None
