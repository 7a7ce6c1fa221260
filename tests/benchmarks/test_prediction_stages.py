"""benchmarks/prediction_stages.py: every stage is timed, and the stages chain into the real masks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from script_loader import load_script

from skinnet.data.io import read_image
from skinnet.inference.model_spec import ModelSpec

STAGES = ["decode", "prepare", "network", "resize back", "mask", "write"]


def test_prints_each_stage_and_the_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert load_script("benchmarks/prediction_stages.py").main(["--images", "2", "--threads", "2"]) == 0
    rows = re.findall(r"^\| ([a-z ]+) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|$", capsys.readouterr().out,
                      re.MULTILINE)
    assert [row[0] for row in rows] == [*STAGES, "all stages"]
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)


def test_the_stages_chained_give_the_segmenters_mask(sample_data: Path, tmp_path: Path) -> None:
    stages = load_script("benchmarks/prediction_stages.py")
    segmenter = ModelSpec(device="cpu", threads=1).load()
    path = sorted((sample_data / "images").glob("*.jpg"))[0]
    item: object = path
    functions = dict(stages.stage_functions(segmenter, tmp_path))
    for name in STAGES[:-1]:
        if name == "resize back":  # the benchmark's images are 1024x768; this one keeps its own size
            item = stages.cv2.resize(item, read_image(path).shape[1::-1], interpolation=stages.cv2.INTER_LINEAR)
            continue
        item = functions[name](item)
    np.testing.assert_array_equal(item, segmenter.predict(read_image(path)))
