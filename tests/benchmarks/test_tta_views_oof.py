"""benchmarks/tta_views_oof.py: its 1- and 4-view rows equal the Segmenter without and with TTA."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from skinnet.data.io import read_image, read_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics


def test_rows_match_the_segmenter_with_and_without_tta(sample_data: Path, stand_in_run: tuple[Path, list[str]],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run, ids = stand_in_run  # the shipped model stands in for each fold's model
    assert load_script("benchmarks/tta_views_oof.py").main(["--run", str(run), "--data", str(sample_data)]) == 0
    table = {match[0]: float(match[1]) for match in re.findall(r"^\| (\d) views?[^|]*\| ([0-9.]+) \|",
                                                               capsys.readouterr().out, re.MULTILINE)}
    assert set(table) == {"1", "2", "4"}
    for tta, row in ((False, "1"), (True, "4")):
        segmenter = Segmenter.from_file(None, device="cpu", tta=tta, backend="torch")  # as the fold models run
        dice = [image_metrics(read_mask(sample_data / "masks" / f"{key}_segmentation.png"),
                              segmenter.predict(read_image(sample_data / "images" / f"{key}.jpg")))["DC"]
                for key in ids]
        assert table[row] == pytest.approx(float(np.mean(dice)), abs=1e-4)
