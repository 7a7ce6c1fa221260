"""Scoring folders: ground-truth folders with stray files, empty folders, and JSON that is always JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from skinnet.cli import main
from skinnet.data.layout import LayoutError
from skinnet.scoring import evaluate_folders, truth_masks


@pytest.fixture()
def folders(tmp_path: Path, sample_data: Path) -> tuple[Path, Path]:
    """Predictions (the truth itself) and a ground-truth folder of 5 real masks."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for mask in sorted((sample_data / "masks").glob("*_segmentation.png"))[:5]:
        shutil.copy(mask, pred / mask.name)
        shutil.copy(mask, gt / mask.name)
    return pred, gt


def test_stray_files_beside_the_masks_do_not_change_how_gt_is_read(folders: tuple[Path, Path],
                                                                   sample_data: Path) -> None:
    pred, gt = folders
    first = sorted(gt.iterdir())[0].name.removesuffix("_segmentation.png")
    # A stray image whose ID has a mask: read as a flat data folder, gt would be that one pair.
    shutil.copy(sample_data / "images" / f"{first}.jpg", gt / f"{first}.png")
    Image.new("L", (8, 8)).save(gt / "notes.png")
    (gt / "README.txt").write_text("masks from the clinic\n")
    assert sorted(truth_masks(gt)) == sorted(p.name.removesuffix("_segmentation.png") for p in pred.iterdir())
    evaluation = evaluate_folders(pred, gt)
    assert len(evaluation.rows) == 5 and evaluation.problems == [] and evaluation.unmatched_truth == 0
    assert all(row["DC"] == 1.0 for row in evaluation.rows)


def test_an_empty_gt_folder_is_an_exit_2_error(folders: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    pred, _ = folders
    (empty := tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="no ground-truth masks"):
        evaluate_folders(pred, empty)
    assert main(["evaluate", "--pred", str(pred), "--gt", str(empty), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == (
        f"skinnet evaluate: error: {empty}: no ground-truth masks (<id>_segmentation.png, or <id>.png) found")


def test_json_output_is_strict_json_even_when_nothing_was_scored(folders: tuple[Path, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = folders
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 5 and summary["DC"] == 1.0
    for mask in gt.iterdir():  # every prediction now lacks its truth: none is scored
        mask.rename(gt / mask.name.replace("ISIC", "OTHER"))
    assert main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--json"]) == 1
    out = capsys.readouterr().out
    assert "NaN" not in out
    summary = json.loads(out, parse_constant=lambda name: pytest.fail(f"not JSON: {name}"))
    assert summary["n"] == 0 and summary["DC"] is None
