"""Training a final model on every pair (``--fold all``): no validation, an LR schedule fixed in advance."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from skinnet.config import load_config
from skinnet.networks.files import load_model
from skinnet.runs import read_log
from skinnet.training.trainer import train_fold


def test_all_data_training_uses_every_pair_and_keeps_the_last_epoch(sample_data: Path, tmp_path: Path) -> None:
    config = load_config(None, ["model.width=4", "data.image_size=32", "train.epochs=3", "model.dilations=[1]",
                                "train.schedule=step", "train.lr_milestones=[1, 2]", "train.lr_factor=0.5",
                                f"data.cache_dir={tmp_path / 'c'}"])
    result = train_fold(config, sample_data, tmp_path / "run", fold=None)
    assert result.paths.folder == tmp_path / "run" / "all" and result.val_summary == {}
    assert not (tmp_path / "run" / "splits.json").exists()
    rows = read_log(result.paths.folder / "log.csv")
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert all(math.isnan(row["val_dc"]) for row in rows)
    assert result.kept_epoch == 2  # "best" is the last epoch
    _, saved = load_model(result.paths.folder / "best.safetensors")
    assert saved == config
    assert [row["lr"] for row in rows] == pytest.approx([config.train.lr * f for f in (0.5, 0.25, 0.25)])


def test_all_data_training_on_plateau_warns_that_nothing_validates(sample_data: Path, tmp_path: Path) -> None:
    config = load_config(None, ["model.width=4", "data.image_size=32", "train.epochs=1", "model.dilations=[1]",
                                f"data.cache_dir={tmp_path / 'c'}"])
    with pytest.warns(UserWarning, match="train.schedule=step"):
        train_fold(config, sample_data, tmp_path / "run", fold=None)
