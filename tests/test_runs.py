"""skinnet.runs: the run folder's one owner (paths, split, config, logs, summaries)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from skinnet import runs
from skinnet.config import load_config
from skinnet.data.splits import SplitError


def test_the_layout_is_the_one_skinnet_cv_has_always_written(tmp_path: Path) -> None:
    paths = runs.fold_paths(tmp_path, 3)
    assert paths.folder == tmp_path / "fold_3" and runs.fold_paths(tmp_path, None).folder == tmp_path / "all"
    assert [p.name for p in (paths.last_checkpoint, paths.kept_checkpoint, paths.kept_weights, paths.log,
                             paths.val_predictions, paths.val_metrics, paths.val_summary)] == [
        "last.pt", "best.pt", "best.safetensors", "log.csv", "val_predictions", "val_metrics.csv",
        "val_summary.json"]
    assert runs.splits_path(tmp_path).name == "splits.json"


def test_the_split_is_created_once_then_read_back_checked(tmp_path: Path) -> None:
    ids = [f"ISIC_{k:07d}" for k in range(10)]
    folds = runs.load_or_create_split(tmp_path, ids, 5, seed=42)
    assert runs.read_split(tmp_path) == folds == runs.read_split(tmp_path, ids)
    with pytest.raises(SplitError, match="not in the data"):
        runs.read_split(tmp_path, ids[:5])
    runs.splits_path(tmp_path).write_text(json.dumps({"folds": [["a", "b"], ["b"]]}))
    with pytest.raises(SplitError, match="more than one fold"):
        runs.read_split(tmp_path)
    runs.splits_path(tmp_path).write_text(json.dumps({"folds": [["a"], 7]}))
    with pytest.raises(SplitError, match="lists of image IDs"):
        runs.read_split(tmp_path)
    with pytest.raises(runs.RunError, match="no split file"):
        runs.read_split(tmp_path / "elsewhere")


def test_share_split_copies_once_and_refuses_another_split(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    runs.load_or_create_split(first, [str(k) for k in range(6)], 3, seed=1)
    runs.share_split(first, second)
    assert runs.read_split(second) == runs.read_split(first)
    runs.share_split(first, second)  # the same split again is fine
    third = tmp_path / "c"
    runs.load_or_create_split(third, [str(k) for k in range(6)], 3, seed=2)
    with pytest.raises(runs.RunError, match="differs"):
        runs.share_split(first, third)


def test_fold_models_are_listed_in_fold_order(tmp_path: Path) -> None:
    with pytest.raises(runs.RunError, match="no fold"):
        runs.fold_models(tmp_path)
    for fold in (10, 2, 0):
        paths = runs.fold_paths(tmp_path, fold)
        paths.folder.mkdir()
        paths.kept_weights.write_bytes(b"")
    (tmp_path / "fold_x").mkdir()
    assert [p.parent.name for p in runs.fold_models(tmp_path)] == ["fold_0", "fold_2", "fold_10"]


def test_out_of_fold_gives_each_fold_that_kept_a_model_with_its_pairs(tmp_path: Path, sample_data: Path) -> None:
    ids = sorted(path.stem for path in (sample_data / "images").glob("*.jpg"))[:9]
    folds = runs.load_or_create_split(tmp_path, ids, 3, seed=0)
    for fold in (0, 2):
        runs.fold_paths(tmp_path, fold).folder.mkdir()
        runs.fold_paths(tmp_path, fold).kept_weights.write_bytes(b"")
    missing: list[str] = []
    found = list(runs.out_of_fold(tmp_path, sample_data, on_missing=missing.append))
    assert [fold.fold for fold in found] == [0, 2]
    assert missing == ["fold 1: no best.safetensors; its 3 images are left out"]
    for fold in found:
        assert fold.model == runs.fold_paths(tmp_path, fold.fold).kept_weights
        assert [pair.id for pair in fold.validation] == folds[fold.fold]
        assert sorted(pair.id for pair in fold.training + fold.validation) == ids
        assert all(pair.image.stem == pair.id and pair.mask.is_file() for pair in fold.validation)
    assert [fold.fold for fold in runs.out_of_fold(tmp_path, sample_data, folds=[2])] == [2]


def test_config_is_recorded_and_a_different_network_is_refused(tmp_path: Path) -> None:
    assert runs.read_config(tmp_path) is None
    runs.write_config(tmp_path, load_config(None, ["model.width=4"]))
    assert runs.read_config(tmp_path)["model"]["width"] == 4
    runs.check_same_model(load_config(None, ["model.width=4", "train.epochs=3"]), tmp_path)
    with pytest.raises(runs.RunError, match="model"):
        runs.check_same_model(load_config(None, ["model.width=8"]), tmp_path)
    (tmp_path / runs.CONFIG).write_text("[1, 2]")
    with pytest.raises(runs.RunError, match="not a JSON object"):
        runs.read_config(tmp_path)


def test_summaries_are_strict_json_and_paths_relative_to_the_run(tmp_path: Path) -> None:
    paths = runs.fold_paths(tmp_path / "run", 0)
    runs.write_fold_summary(paths, {"n": 0, "DC": math.nan})
    assert "NaN" not in paths.val_summary.read_text() and json.loads(paths.val_summary.read_text())["DC"] is None
    data = tmp_path / "data" / "isic"
    recorded = runs.relative_to_run(data, tmp_path / "run")
    assert recorded == "../data/isic" and not Path(recorded).is_absolute()
    assert runs.resolve_from_run(recorded, tmp_path / "run").resolve() == data.resolve()
    assert runs.resolve_from_run(str(data), tmp_path / "elsewhere") == data  # older runs recorded absolute paths


def test_logs_round_trip(tmp_path: Path) -> None:
    row = {name: 0.5 for name in runs.LOG_COLUMNS} | {"epoch": 0}
    runs.write_log(tmp_path / "log.csv", [row, row | {"epoch": 1}])
    assert [r["epoch"] for r in runs.read_log(tmp_path / "log.csv")] == [0, 1]
    assert runs.read_log(tmp_path / "missing.csv") == []
