"""The CLI end to end on real ISIC pairs: train a fold, predict images of other sizes, evaluate."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data.io import read_mask

TINY = ["model.width=4", "data.image_size=32", "train.epochs=2", "train.batch_size=8", "model.dilations=[1,2]"]


def skinnet(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "skinnet", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    run = tmp_path_factory.mktemp("run")
    config = Path(__file__).resolve().parents[2] / "configs" / "cpu.yaml"
    result = skinnet("train", "--config", str(config), "--data", str(sample_data), "--out", str(run),
                     "--fold", "1", *TINY, f"data.cache_dir={run / 'cache'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "validation predictions at full size" in result.stdout
    return run


def test_train_writes_checkpoints_log_split_and_predictions(trained_run: Path, sample_data: Path) -> None:
    fold = trained_run / "fold_1"
    for name in ("best.safetensors", "best.pt", "last.pt", "log.csv", "val_metrics.csv", "val_summary.json"):
        assert (fold / name).is_file(), name
    rows = list(csv.DictReader((fold / "log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert {"train_loss", "val_loss", "val_dc", "val_ji", "lr", "seconds"} <= set(rows[0])
    split = json.loads((trained_run / "splits.json").read_text())
    assert len(split["folds"]) == 5 and sorted(key for fold_ids in split["folds"] for key in fold_ids) == sorted(
        p.stem for p in (sample_data / "images").glob("*.jpg"))
    predicted = sorted((fold / "val_predictions").glob("*_segmentation.png"))
    assert [p.name.removesuffix("_segmentation.png") for p in predicted] == sorted(split["folds"][1])
    for path in predicted:  # at the ground truth's size, 0/255 single channel
        image = Image.open(path)
        assert image.mode == "L" and image.size == (256, 256)
        assert set(np.unique(np.asarray(image))) <= {0, 255}


def test_predict_any_size_and_format_keeps_the_input_size(trained_run: Path, sample_data: Path,
                                                          tmp_path: Path) -> None:
    source = Image.open(sample_data / "images" / "ISIC_0000025.jpg")
    inputs = tmp_path / "in"
    inputs.mkdir()
    source.resize((1024, 768)).save(inputs / "big.jpg", quality=92)
    source.resize((300, 200)).convert("RGBA").save(inputs / "wide.png")
    source.convert("L").save(inputs / "gray.png")
    out = tmp_path / "out"
    result = skinnet("predict", str(inputs), "--out", str(out), "--model",
                     str(trained_run / "fold_1" / "best.safetensors"), "--overlay")
    assert result.returncode == 0, result.stderr
    sizes = {p.name: Image.open(p).size for p in out.glob("*_segmentation.png")}
    assert sizes == {"big_segmentation.png": (1024, 768), "wide_segmentation.png": (300, 200),
                     "gray_segmentation.png": (256, 256)}
    assert Image.open(out / "big_overlay.png").size == (1024, 768)
    assert Image.open(out / "big_overlay.png").mode == "RGB"


def test_predict_reports_bad_files_and_goes_on(trained_run: Path, sample_data: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(sample_data / "images" / "ISIC_0000025.jpg", inputs)
    (inputs / "broken.jpg").write_bytes(b"not a jpeg at all")
    result = skinnet("predict", str(inputs), "--out", str(tmp_path / "out"), "--model",
                     str(trained_run / "fold_1" / "best.pt"))
    assert result.returncode == 1
    assert "1 file(s) failed" in result.stderr and "broken.jpg: not a readable image" in result.stderr
    assert (tmp_path / "out" / "ISIC_0000025_segmentation.png").is_file()
    assert not (tmp_path / "out" / "broken_segmentation.png").exists()


def test_evaluate_json_and_csv_agree_with_the_official_scorer(trained_run: Path, sample_data: Path,
                                                             tmp_path: Path) -> None:
    from isic_challenge_scoring.segmentation import SegmentationScore

    pred_dir = trained_run / "fold_1" / "val_predictions"
    truth_dir = tmp_path / "truth"  # the official scorer wants a prediction for every truth
    truth_dir.mkdir()
    for pred in pred_dir.glob("*.png"):
        shutil.copy(sample_data / "masks" / pred.name, truth_dir)
    result = skinnet("evaluate", "--pred", str(pred_dir), "--gt", str(sample_data / "masks"), "--json",
                     "--csv", str(tmp_path / "per_image.csv"))
    assert result.returncode == 0, result.stderr
    ours = json.loads(result.stdout)
    assert set(ours) == {"n", "AC", "DC", "JI", "SE", "SP", "TJI"} and ours["n"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SegmentationScore.from_dir(truth_dir, pred_dir).macro_average
    for name, official in [("AC", "accuracy"), ("DC", "dice"), ("JI", "jaccard"), ("SE", "sensitivity"),
                           ("SP", "specificity"), ("TJI", "threshold_jaccard")]:
        assert ours[name] == pytest.approx(float(theirs[official]), abs=1e-6)
    rows = list(csv.DictReader((tmp_path / "per_image.csv").read_text().splitlines()))
    assert len(rows) == 8 and set(rows[0]) == {"id", "AC", "DC", "JI", "SE", "SP", "TJI"}
    table = skinnet("evaluate", "--pred", str(pred_dir), "--gt", str(sample_data))
    assert table.returncode == 0 and all(name in table.stdout for name in ("AC", "DC", "JI", "SE", "SP"))
    assert "32 ground-truth masks have no prediction" in table.stdout


def test_python_api_matches_the_cli(trained_run: Path, sample_data: Path) -> None:
    from skinnet import Segmenter
    from skinnet.data.io import read_image

    segmenter = Segmenter.from_file(trained_run / "fold_1" / "best.safetensors", device="cpu")
    key = sorted((trained_run / "fold_1" / "val_predictions").glob("*.png"))[0].name.removesuffix(
        "_segmentation.png")
    mask = segmenter.predict(read_image(sample_data / "images" / f"{key}.jpg"))
    saved = read_mask(trained_run / "fold_1" / "val_predictions" / f"{key}_segmentation.png")
    assert np.array_equal(mask, saved)


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    result = skinnet("train", "--config", str(tmp_path / "nope.yaml"), "--data", str(tmp_path))
    assert result.returncode == 2 and "nope.yaml: cannot read config" in result.stderr
    result = skinnet("predict", str(tmp_path), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "m.pt"))
    assert result.returncode == 2 and "m.pt: model file not found" in result.stderr


def test_predict_with_a_run_folder_averages_its_fold_models(trained_run: Path, sample_data: Path,
                                                           tmp_path: Path) -> None:
    image = sample_data / "images" / "ISIC_0000025.jpg"
    ensemble = skinnet("predict", str(image), "--out", str(tmp_path / "ens"), "--run", str(trained_run),
                       "--tta", "on", "--postprocess", "largest_component")
    single = skinnet("predict", str(image), "--out", str(tmp_path / "one"), "--model",
                     str(trained_run / "fold_1" / "best.safetensors"), "--tta", "on",
                     "--postprocess", "largest_component")
    assert ensemble.returncode == 0 and single.returncode == 0, ensemble.stderr + single.stderr
    # the run has one finished fold, so its ensemble must reproduce that fold's model exactly
    name = "ISIC_0000025_segmentation.png"
    assert np.array_equal(read_mask(tmp_path / "ens" / name), read_mask(tmp_path / "one" / name))
