"""A synthetic cross-validation run on the sample pairs, as skinnet cv leaves it, without training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skinnet.data.atomic import write_mask, write_text
from skinnet.data.io import read_mask
from skinnet.data.splits import make_folds
from skinnet.runs import LOG_COLUMNS
from skinnet.scoring import evaluate_folders
from skinnet.training.cv import summarize_cv

EPOCHS = {0: 6, 1: 6, 2: 4}  # fold 2 stopped early: later epochs average two folds only


def fake_fold(run: Path, sample_data: Path, fold: int, ids: list[str], rng: np.random.Generator) -> None:
    """A fold as train_fold leaves it: random log, shifted-truth predictions, their per-image metrics."""
    folder = run / f"fold_{fold}"
    rows = [",".join(LOG_COLUMNS)]
    for epoch in range(EPOCHS[fold]):
        rows.append(",".join([str(epoch), *(f"{v:.6f}" for v in rng.uniform(0.05, 0.95, len(LOG_COLUMNS) - 1))]))
    write_text(folder / "log.csv", "\n".join(rows) + "\n")
    for i, key in enumerate(ids):  # shifts of 0..N px: the DC falls with the shift, from 1.0 downwards
        truth = read_mask(sample_data / "masks" / f"{key}_segmentation.png")
        write_mask(folder / "val_predictions" / f"{key}_segmentation.png", np.roll(truth, 9 * i, axis=1))
    evaluation = evaluate_folders(folder / "val_predictions", sample_data / "masks")
    evaluation.write_csv(folder / "val_metrics.csv")
    write_text(folder / "val_summary.json", json.dumps(evaluation.summary))


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    ids = sorted(path.stem for path in (sample_data / "images").glob("*.jpg"))
    folds = make_folds(ids, 3, seed=1)
    write_text(run / "splits.json", json.dumps({"seed": 1, "n_folds": 3, "folds": folds}))
    write_text(run / "config.json", json.dumps({"model": {"name": "skinnet"}, "data": {"image_size": 32}}))
    rng = np.random.default_rng(0)
    for fold, fold_ids in enumerate(folds):
        fake_fold(run, sample_data, fold, fold_ids, rng)
    summarize_cv(run, sample_data)
    return run
