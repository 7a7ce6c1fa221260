"""benchmarks/dicom_node.py: both sides segment the same files and the row gives their ratio."""

from __future__ import annotations

import re

import pytest
from script_loader import load_script

pytestmark = pytest.mark.slow


def test_prints_the_node_and_predict_rates_and_their_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pynetdicom", reason="the DICOM node needs pynetdicom (the 'node' extra)")
    assert load_script("benchmarks/dicom_node.py").main(["--images", "2", "--repeats", "1",
                                                         "--size", "320x240"]) == 0
    row = re.search(r"^\| 2 \| onnx \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|$", capsys.readouterr().out, re.M)
    node, predict, ratio = (float(value) for value in row.groups())
    assert node > 0 and predict > 0
    # the rates are printed to 0.01, the ratio of the unrounded rates too: it lies between the extremes
    low, high = (node - 0.005) / (predict + 0.005), (node + 0.005) / max(predict - 0.005, 1e-9)
    assert low - 0.005 <= ratio <= high + 0.005
