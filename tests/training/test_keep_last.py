"""``train.keep``: a fold keeps its best validation epoch (the paper's way) or its last one (a fixed recipe)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from skinnet.config import ConfigError, load_config
from skinnet.networks.files import load_model
from skinnet.runs import read_log
from skinnet.training.trainer import train_fold

TINY = ["model.width=4", "data.image_size=32", "train.epochs=4", "model.dilations=[1]", "train.lr=0.05",
        "train.schedule=poly"]


def weights(path: Path) -> list[torch.Tensor]:
    return list(load_model(path)[0].state_dict().values())


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_kept_epoch_follows_train_keep(keep: str, sample_data: Path, tmp_path: Path) -> None:
    config = load_config(None, [*TINY, f"train.keep={keep}", f"data.cache_dir={tmp_path / 'c'}"])
    result = train_fold(config, sample_data, tmp_path / "run", fold=0)
    rows = read_log(result.paths.folder / "log.csv")
    best = max(range(len(rows)), key=lambda epoch: rows[epoch]["val_dc"])
    assert result.kept_epoch == (3 if keep == "last" else best)
    kept, last = weights(result.paths.folder / "best.safetensors"), weights(result.paths.folder / "last.pt")
    # the validation predictions and scores are those of the kept epoch
    assert result.val_summary["n"] == 8
    assert all(torch.equal(a, b) for a, b in zip(kept, last, strict=True)) == (result.kept_epoch == 3)


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"train\.keep"):
        load_config(None, ["train.keep=middle"])
