"""scripts/gpu_recipe_screen.sh (issue 26 step 2) at toy scale on the CPU, and its budget plan on its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from script_loader import load_script

from skinnet.data.layout import find_pairs
from skinnet.data.splits import load_folds

REPO = Path(__file__).resolve().parents[2]
TOY = ["--probe-steps", "1", "--options", "lite2,dice_ce", "model.width=4", "data.image_size=64",
       "train.epochs=1", "model.dilations=[1]"]


@pytest.fixture()
def ten_pairs(sample_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """10 of the bundled pairs and a 5-fold split of them in the committed split's format (2 per fold)."""
    data = tmp_path / "data"
    for folder in ("images", "masks"):
        (data / folder).mkdir(parents=True)
    images = sorted((sample_data / "images").glob("*.jpg"))[:10]
    for image in images:
        shutil.copy(image, data / "images" / image.name)
        shutil.copy(sample_data / "masks" / f"{image.stem}_segmentation.png", data / "masks")
    ids = [image.stem for image in images]
    split = tmp_path / "splits.json"
    split.write_text(json.dumps({"seed": 7, "n_folds": 5, "folds": [ids[k::5] for k in range(5)]}, indent=3))
    return data, split


@pytest.mark.slow
def test_toy_screen_trains_each_recipe_on_two_folds_and_pairs_them(ten_pairs: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    data, split = ten_pairs
    run, out = tmp_path / "run", tmp_path / "out"
    env = {**os.environ, "DATA": str(data), "RUN": str(run), "OUT": str(out), "BUDGET": "1200",
           "SPLIT": str(split), "PYTHON": sys.executable, "WHEELS": str(tmp_path / "no_wheels"),
           "SKINNET_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(["bash", str(REPO / "scripts" / "gpu_recipe_screen.sh"), *TOY], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["job.log", "oof", "recipe_screen.tar.gz", "screen.json",
                                                      "screen.md"]
    assert "plan: recipe10, lite2, dice_ce (6 jobs, 1 at once, 0 workers each)" in (out / "job.log").read_text()
    with tarfile.open(out / "recipe_screen.tar.gz") as tar:
        names = tar.getnames()
    assert not [n for n in names if n.endswith((".pt", ".safetensors"))]  # never the weights
    assert sum(n.endswith("val_metrics.csv") for n in names) == 6
    assert sum(n.endswith(("config.json", "splits.json")) for n in names) == 6
    result = json.loads((out / "screen.json").read_text())
    assert set(result["jobs"].values()) == {"finished"} and len(result["jobs"]) == 6
    folds = json.loads(split.read_text())["folds"]
    for name in ("recipe10", "lite2", "dice_ce"):
        assert (run / name / "splits.json").read_bytes() == split.read_bytes()  # the committed split, as is
        config = json.loads((run / name / "config.json").read_text())
        assert config["model"]["encoder"] == ("efficientnet_lite2" if name == "lite2" else "efficientnet_lite0")
        assert config["train"]["loss"] == ("dice_ce" if name == "dice_ce" else "dice")
        assert config["data"]["color_constancy"] == "shades_of_gray" and config["train"]["schedule"] == "poly"
        assert (config["train"]["amp"], config["train"]["channels_last"], config["data"]["image_size"]) == (
            True, True, 64)
        oof = pd.read_csv(out / "oof" / f"{name}.csv")
        assert sorted(oof["id"]) == sorted(folds[0] + folds[1])  # out of fold on folds 0 and 1
        assert result["recipes"][name]["epochs"] == [1, 1]
    # benchmarks/paired_oof.py read the per-image CSVs: 4 images paired per option
    for option in ("lite2", "dice_ce"):
        assert "4 images scored by both" in result["recipes"][option]["paired"]
    assert "## lite2 (model.encoder=efficientnet_lite2) against recipe10" in (out / "screen.md").read_text()


def test_the_plan_drops_options_from_the_end_until_the_budget_fits() -> None:
    screen = load_script("scripts/recipe_screen.py")
    seconds = {"recipe10": 100.0, "lite2": 150.0, "width16": 120.0, "dice_ce": 100.0, "epochs20": 200.0}
    assert screen.plan(seconds, 1000.0) == (list(seconds), [])
    assert screen.plan(seconds, 400.0) == (["recipe10", "lite2", "width16"], ["dice_ce", "epochs20"])
    assert screen.plan(seconds, 50.0) == (["recipe10"], ["lite2", "width16", "dice_ce", "epochs20"])


def test_every_option_is_one_override_of_the_ten_epoch_recipe() -> None:
    screen = load_script("scripts/recipe_screen.py")
    assert screen.RECIPE == ["train.epochs=10"] and list(screen.OPTIONS) == ["lite2", "width16", "dice_ce",
                                                                              "epochs20"]
    assert all(len(overrides) == 1 for overrides in screen.OPTIONS.values())


def test_the_committed_split_fits_the_training_pairs(shared_train: Path) -> None:
    ids = [pair.id for pair in find_pairs(shared_train).pairs]
    folds = load_folds(REPO / "docs" / "pretrained_cv" / "splits.json", ids)
    assert [len(fold) for fold in folds] == [400] * 5
