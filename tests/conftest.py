"""Shared fixtures: the bundled sample pairs and, where present, the full ISIC 2017 training folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "skinnet" / "sample_data"
SHARED_TRAIN = REPO.parent / "shared" / "data" / "isic2017_train"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The 40 real ISIC 2017 pairs shipped with the package (images/ + masks/)."""
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def shared_train() -> Path:
    """The 2000 ISIC 2017 training pairs beside the repo; tests using it skip where it is absent."""
    if not (SHARED_TRAIN / "masks").is_dir():
        pytest.skip(f"ISIC 2017 training data not found at {SHARED_TRAIN} (only on the project's machines)")
    return SHARED_TRAIN


@pytest.fixture()
def cache_dir(tmp_path: Path) -> str:
    """A private resize cache, so tests never share or reuse one another's arrays."""
    return str(tmp_path / "cache")
