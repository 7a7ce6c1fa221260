"""benchmarks/int8_oof.py: its float32 column is the shipped Segmenter's score; int8 scores every image too."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from skinnet.data.io import read_image, read_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics
from skinnet.runs import read_metrics_csv


def test_float32_column_matches_the_segmenter(sample_data: Path, tmp_path: Path,
                                              stand_in_run: tuple[Path, list[str]],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run, ids = stand_in_run  # the shipped model stands in for each fold's model
    script = load_script("benchmarks/int8_oof.py")
    assert script.main(["--run", str(run), "--data", str(sample_data), "--out", str(tmp_path / "out"),
                        "--calibration", "3"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"^\| DC \| ([0-9.]+) \| ([0-9.]+) \|", out, re.MULTILINE)
    assert row is not None, out
    for precision, column in (("int8", 1), ("float32", 2)):
        table = read_metrics_csv(tmp_path / "out" / f"{precision}_metrics.csv")
        assert sorted(str(r["id"]) for r in table) == ids
        assert float(row[column]) == pytest.approx(np.mean([r["DC"] for r in table]), abs=1e-4)
    shipped = Segmenter.from_file(None, backend="onnx")
    dice = [image_metrics(read_mask(sample_data / "masks" / f"{key}_segmentation.png"),
                          shipped.predict(read_image(sample_data / "images" / f"{key}.jpg")))["DC"] for key in ids]
    assert float(row[2]) == pytest.approx(float(np.mean(dice)), abs=1e-4)
    assert "x)" in out  # the network times of both precisions
