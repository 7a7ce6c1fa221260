"""Fixtures of the benchmark scripts' tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skinnet import runs
from skinnet.weights import default_model_path


@pytest.fixture()
def stand_in_run(sample_data: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """A 2-fold cross-validation run over 6 sample IDs whose fold models are copies of the shipped model.

    Returns:
        The run folder and the sorted IDs.
    """
    ids = sorted(path.stem for path in (sample_data / "images").glob("*.jpg"))[:6]
    run = tmp_path / "run"
    runs.load_or_create_split(run, ids, 2, seed=0)  # two folds of three images
    for fold in range(2):
        runs.fold_paths(run, fold).folder.mkdir(parents=True)
        shutil.copy(default_model_path(), runs.fold_paths(run, fold).kept_weights)
    return run, ids
