"""scripts/predict_slurm_array.sh for real: the tasks of an array as SLURM numbers them, then the merge."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_tasks_of_an_array_predict_disjoint_shards_that_merge_into_one_table(
        sample_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((sample_data / "images").glob("*.jpg"))[:12]:
        Image.open(path).resize((64, 48)).save(images / path.name)
    out = tmp_path / "out"
    skinnet = f"{sys.executable} -m skinnet"
    for task in (5, 6):  # an array 5-6: shards 1/2 and 2/2
        env = {**os.environ, "SKINNET": skinnet, "IMAGES": str(images), "OUT": str(out), "WORKERS": "1",
               "PREDICT_OPTIONS": f"--model {tiny_model} --device cpu", "SLURM_ARRAY_TASK_ID": str(task),
               "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "2", "OMP_NUM_THREADS": "1",
               "NO_ALBUMENTATIONS_UPDATE": "1"}
        result = subprocess.run(["bash", str(REPO / "scripts" / "predict_slurm_array.sh")], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert (out / f"predictions.shard-{task - 4}-of-2.csv").is_file()
    merged = subprocess.run([*skinnet.split(), "merge-shards", str(out / "predictions.csv")], capture_output=True,
                            text=True, timeout=120)
    assert merged.returncode == 0, merged.stderr
    rows = list(csv.DictReader((out / "predictions.csv").read_text().splitlines()))
    assert [row["id"] for row in rows] == sorted(path.stem for path in images.iterdir())
    assert all((out / row["mask"]).is_file() and row["status"] == "ok" for row in rows)
