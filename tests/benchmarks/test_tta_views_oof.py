"""benchmarks/tta_views_oof.py: its 1- and 4-view rows equal the Segmenter without and with TTA."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from skinnet import runs
from skinnet.data.io import read_image, read_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics
from skinnet.weights import default_model_path


def test_rows_match_the_segmenter_with_and_without_tta(sample_data: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    ids = sorted(path.stem for path in (sample_data / "images").glob("*.jpg"))[:6]
    run = tmp_path / "run"
    runs.load_or_create_split(run, ids, 2, seed=0)  # two folds of three images
    for fold in range(2):  # the shipped model stands in for each fold's model
        runs.fold_paths(run, fold).folder.mkdir(parents=True)
        shutil.copy(default_model_path(), runs.fold_paths(run, fold).best_weights)
    assert load_script("benchmarks/tta_views_oof.py").main(["--run", str(run), "--data", str(sample_data)]) == 0
    table = {match[0]: float(match[1]) for match in re.findall(r"^\| (\d) views?[^|]*\| ([0-9.]+) \|",
                                                               capsys.readouterr().out, re.MULTILINE)}
    assert set(table) == {"1", "2", "4"}
    for tta, row in ((False, "1"), (True, "4")):
        segmenter = Segmenter.from_file(None, device="cpu", tta=tta)
        dice = [image_metrics(read_mask(sample_data / "masks" / f"{key}_segmentation.png"),
                              segmenter.predict(read_image(sample_data / "images" / f"{key}.jpg")))["DC"]
                for key in ids]
        assert table[row] == pytest.approx(float(np.mean(dice)), abs=1e-4)
