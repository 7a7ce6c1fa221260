"""Where the bundled ISIC 2017 sample pairs live (40 pairs, CC-BY-NC 4.0: see sample_data/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
SAMPLE_IMAGES = SAMPLE_DATA / "images"
