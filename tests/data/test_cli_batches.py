"""`skinnet predict` and `skinnet evaluate` as subprocesses on folders mixing good and bad real files."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data.io import read_mask

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def skinnet(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skinnet", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if "error:" in line]


@pytest.fixture(scope="module")
def mixed_inputs(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """Four good images in awkward formats and four bad files, side by side."""
    folder = tmp_path_factory.mktemp("inputs")
    source = sample_data / "images" / "ISIC_0000025.jpg"
    photo = Image.open(source).convert("RGB")
    shutil.copy(source, folder / "good_plain.jpg")
    photo.convert("CMYK").save(folder / "good_cmyk.jpg")
    Image.fromarray(np.asarray(photo.convert("L")).astype(np.uint16) * 257).save(folder / "good_16bit.png")
    stored = photo.crop((0, 0, 256, 160))
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed turned 90 degrees clockwise: 160 wide, 256 high
    stored.save(folder / "good_rotated.jpg", exif=exif, quality=95)
    with Image.open(folder / "good_rotated.jpg") as opened:  # the displayed pixels, saved losslessly
        Image.fromarray(np.rot90(np.asarray(opened.convert("RGB")), -1)).save(folder / "good_upright.png")
    (folder / "bad_empty.jpg").write_bytes(b"")
    data = source.read_bytes()
    (folder / "bad_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "bad_text.jpg").write_text("not an image")
    Image.new("1", (20_000, 20_000)).save(folder / "bad_bomb.png")
    return folder


GOOD = ["good_16bit", "good_cmyk", "good_plain", "good_rotated", "good_upright"]
BAD = {"bad_bomb.png": "decompression bomb", "bad_empty.jpg": "empty file", "bad_text.jpg": "not a readable image",
       "bad_truncated.jpg": "truncated"}


@pytest.mark.slow
def test_predict_writes_every_good_file_and_reports_every_bad_one(
        mixed_inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = skinnet("predict", mixed_inputs, "--out", out, "--model", tiny_model, "--probability")
    assert result.returncode == 1, result.stderr
    # no temporaries, nothing for the bad files; beside the images' outputs only the run's bookkeeping
    bookkeeping = {"manifest.json", "predictions.csv", ".skinnet"}
    written = sorted(p.name for p in out.iterdir() if p.name not in bookkeeping)
    assert written == sorted(f"{key}_{kind}.png" for key in GOOD for kind in ("probability", "segmentation"))
    table = list(csv.DictReader((out / "predictions.csv").read_text().splitlines()))
    assert [(row["id"], row["status"]) for row in table] == sorted(
        [(Path(name).stem, "failed") for name in BAD] + [(key, "ok") for key in GOOD])
    assert all(reason in row["reason"] for row in table for name, reason in BAD.items()
               if row["id"] == Path(name).stem)
    tail = result.stderr.strip().splitlines()[-5:]  # the report comes last: a count, then one line a file
    assert tail[0] == "4 file(s) failed:"
    for line, (name, reason) in zip(tail[1:], sorted(BAD.items()), strict=True):
        assert line.strip().startswith(str(mixed_inputs / name)) and reason in line
    masks = {key: read_mask(out / f"{key}_segmentation.png") for key in GOOD}
    assert masks["good_16bit"].shape == masks["good_cmyk"].shape == (256, 256)
    # The EXIF image's outputs are in the displayed orientation: the upright image's outputs exactly.
    assert masks["good_rotated"].shape == (256, 160)
    assert np.array_equal(masks["good_rotated"], masks["good_upright"])
    rotated, upright = (np.asarray(Image.open(out / f"{key}_probability.png"))
                        for key in ("good_rotated", "good_upright"))
    assert np.array_equal(rotated, upright)
    assert not np.array_equal(upright, upright[::-1, ::-1])  # not symmetric: a wrong turn would show


def test_strict_predict_stops_at_the_first_bad_file(mixed_inputs: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = skinnet("predict", mixed_inputs, "--out", out, "--model", tiny_model, "--strict")
    assert result.returncode == 2
    assert error_lines(result) == [f"skinnet predict: error: {mixed_inputs / 'bad_bomb.png'}: image declares "
                                   "more than 100,000,000 pixels (refused as a possible decompression bomb)"]
    assert not out.exists() or not list(out.iterdir())  # bad_bomb.png sorts first: nothing was written


@pytest.mark.parametrize("where", ["under a file", "in /proc"])
def test_unwritable_output_folder_is_one_clear_line(
        where: str, sample_data: Path, tiny_model: Path, tmp_path: Path) -> None:
    (blocker := tmp_path / "file.txt").write_text("a file, not a folder")
    out = blocker / "out" if where == "under a file" else Path("/proc/skinnet_out")
    result = skinnet("predict", sample_data / "images" / "ISIC_0000025.jpg", "--out", out, "--model", tiny_model)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = error_lines(result)
    assert line.startswith(f"skinnet predict: error: {blocker if where == 'under a file' else out}")


@pytest.fixture
def scored(tmp_path: Path, sample_data: Path) -> tuple[Path, Path]:
    """Predictions for 5 real truths: 2 perfect, 1 with gray levels, 1 of 0/1, 1 empty file; 1 without truth."""
    ids = sorted(p.name.removesuffix("_segmentation.png") for p in (sample_data / "masks").glob("*.png"))[:5]
    pred = tmp_path / "pred"
    pred.mkdir()
    for key in ids[:2]:
        shutil.copy(sample_data / "masks" / f"{key}_segmentation.png", pred)
    truth = np.asarray(Image.open(sample_data / "masks" / f"{ids[2]}_segmentation.png").convert("L"))
    Image.fromarray(np.where(truth > 0, 200, 30).astype(np.uint8)).save(pred / f"{ids[2]}_segmentation.png")
    Image.fromarray((truth // 255).astype(np.uint8)).save(pred / f"{ids[3]}_segmentation.png")
    (pred / f"{ids[4]}_segmentation.png").write_bytes(b"")
    Image.fromarray(truth).save(pred / "ISIC_9999999_segmentation.png")
    return pred, sample_data / "masks"


def test_evaluate_scores_good_masks_and_reports_bad_ones(scored: tuple[Path, Path], tmp_path: Path) -> None:
    pred, gt = scored
    result = skinnet("evaluate", "--pred", pred, "--gt", gt, "--csv", tmp_path / "metrics.csv")
    assert result.returncode == 1
    assert "n = 3 images" in result.stdout
    assert "gray level(s) besides 0/255" in result.stderr  # the 200/30 mask is scored, with a warning
    tail = result.stderr.strip().splitlines()[-4:]
    assert tail[0] == "3 file(s) failed:"
    assert ["0/1" in tail[1], "empty file" in tail[2], "no ground-truth mask" in tail[3]] == [True] * 3
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 3 and all(float(row["DC"]) == 1.0 for row in rows)


def test_strict_evaluate_stops_and_writes_no_csv(scored: tuple[Path, Path], tmp_path: Path) -> None:
    pred, gt = scored
    result = skinnet("evaluate", "--pred", pred, "--gt", gt, "--csv", tmp_path / "metrics.csv", "--strict")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert "0/1" in line
    assert not (tmp_path / "metrics.csv").exists()


def test_evaluate_an_empty_folder_is_an_error(tmp_path: Path, sample_data: Path) -> None:
    (tmp_path / "pred").mkdir()
    result = skinnet("evaluate", "--pred", tmp_path / "pred", "--gt", sample_data)
    assert result.returncode == 2
    assert error_lines(result) == [f"skinnet evaluate: error: {tmp_path / 'pred'}: no predicted masks "
                                   "(<id>_segmentation.png) found"]
