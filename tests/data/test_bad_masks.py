"""Masks in every awkward form, as ground truth and as predictions to score."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data import io as skio
from skinnet.data.io import InputError, read_mask
from skinnet.data.layout import LayoutError
from skinnet.scoring import evaluate_folders

SAMPLES = Path(skio.__file__).parents[1] / "sample_data"
SAMPLE_MASKS = sorted((SAMPLES / "masks").glob("*_segmentation.png"))


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    """A real ISIC ground truth as 0/255 uint8, with lesion and background."""
    with Image.open(SAMPLE_MASKS[0]) as mask:
        array = np.asarray(mask.convert("L"))
    assert set(np.unique(array).tolist()) == {0, 255}
    return array


def _save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path)
    return path


def test_zero_255_mask_reads_as_boolean(truth: np.ndarray, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean mask gives no warning
        mask = read_mask(_save(truth, tmp_path / "m.png"))
    assert mask.dtype == bool and np.array_equal(mask, truth == 255)


def test_zero_one_mask_is_reported_not_scored_as_empty(truth: np.ndarray, tmp_path: Path) -> None:
    path = _save((truth // 255).astype(np.uint8), tmp_path / "zero_one.png")
    with pytest.raises(InputError, match="0/1; expected 0/255") as info:
        read_mask(path)
    assert info.value.path == path


def test_empty_mask_is_not_mistaken_for_a_zero_one_mask(truth: np.ndarray, tmp_path: Path) -> None:
    assert not read_mask(_save(np.zeros_like(truth), tmp_path / "empty.png")).any()


def test_gray_levels_are_binarised_above_128_with_a_warning(truth: np.ndarray, tmp_path: Path) -> None:
    levels = np.zeros_like(truth)
    levels[:, 64:128], levels[:, 128:192], levels[:, 192:] = 128, 129, 255
    path = _save(levels, tmp_path / "gray.png")
    with pytest.warns(UserWarning, match=r"gray level.*binarised at > 128") as record:
        mask = read_mask(path)
    assert str(path) in str(record[0].message)
    assert not mask[:, :128].any() and mask[:, 128:].all()  # 128 is background, 129 lesion, as the scorer


def test_one_bit_and_palette_masks_are_read(truth: np.ndarray, tmp_path: Path) -> None:
    for mode in ("1", "P"):
        assert np.array_equal(read_mask(_save(truth, tmp_path / f"{mode}.png", mode)), truth == 255)


def test_grayscale_rgb_and_la_masks_are_read(truth: np.ndarray, tmp_path: Path) -> None:
    for mode in ("RGB", "RGBA", "LA"):
        assert np.array_equal(read_mask(_save(truth, tmp_path / f"{mode}.png", mode)), truth == 255)


def test_coloured_rgb_mask_is_refused(truth: np.ndarray, tmp_path: Path) -> None:
    colour = np.zeros((*truth.shape, 3), np.uint8)
    colour[truth == 255] = (255, 0, 0)  # lesion drawn in red
    with pytest.raises(InputError, match="colour"):
        read_mask(_save(colour, tmp_path / "red.png"))


def test_16_bit_mask_is_refused_clearly(truth: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not supported.*0/255 PNG"):
        read_mask(_save(truth.astype(np.uint16) * 257, tmp_path / "deep.png"))


@pytest.fixture
def scoring(truth: np.ndarray, tmp_path: Path) -> tuple[Path, Path]:
    """Ground truth (4 real masks) and predictions: 2 good, 4 bad in different ways."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    for source in SAMPLE_MASKS[:4]:
        shutil.copy(source, gt / source.name)
    ids = [source.name.removesuffix("_segmentation.png") for source in SAMPLE_MASKS[:4]]
    shutil.copy(gt / f"{ids[0]}_segmentation.png", pred / f"{ids[0]}_segmentation.png")  # perfect
    with Image.open(gt / f"{ids[1]}_segmentation.png") as mask:
        second = np.asarray(mask.convert("L"))
    _save(second, pred / f"{ids[1]}_segmentation.png")
    _save(second // 255, pred / f"{ids[1]}.png")  # duplicate ID, and 0/1 as well: must be reported
    _save((second // 255).astype(np.uint8), pred / f"{ids[2]}_segmentation.png")  # 0/1 values
    _save(np.zeros((100, 80), np.uint8), pred / "ISIC_9999999_segmentation.png")  # no ground truth
    (pred / f"{ids[3]}_segmentation.png").write_bytes(b"")  # zero bytes
    return gt, pred


def test_evaluation_scores_good_masks_and_reports_every_bad_one(scoring: tuple[Path, Path]) -> None:
    gt, pred = scoring
    result = evaluate_folders(pred, gt)
    assert len(result.rows) == 2
    assert result.rows[0]["DC"] == 1.0
    assert len(result.problems) == 4
    report = "\n".join(result.problems)
    for name, reason in [(f"{SAMPLE_MASKS[1].name.removesuffix('_segmentation.png')}.png", "duplicate ID"),
                         (SAMPLE_MASKS[2].name, "0/1"),
                         ("ISIC_9999999_segmentation.png", "no ground-truth mask"),
                         (SAMPLE_MASKS[3].name, "empty file")]:
        assert any(name in line and reason in line for line in result.problems), (name, report)


def test_evaluation_reports_a_size_mismatch(scoring: tuple[Path, Path]) -> None:
    gt, pred = scoring
    target = pred / SAMPLE_MASKS[0].name
    _save(np.zeros((128, 128), np.uint8), target)
    result = evaluate_folders(pred, gt)
    assert any(line.startswith(str(target)) and "prediction is 128x128" in line for line in result.problems)


def test_strict_evaluation_stops_at_the_first_bad_file(scoring: tuple[Path, Path]) -> None:
    gt, pred = scoring
    with pytest.raises(InputError):
        evaluate_folders(pred, gt, strict=True)


def test_bad_ground_truth_is_reported_with_its_own_name(scoring: tuple[Path, Path], truth: np.ndarray) -> None:
    gt, pred = scoring
    bad_truth = gt / SAMPLE_MASKS[0].name
    _save(truth // 255, bad_truth)
    result = evaluate_folders(pred, gt)
    assert any(line.startswith(str(bad_truth)) and "0/1" in line for line in result.problems)


def test_empty_prediction_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pred").mkdir()
    with pytest.raises(LayoutError, match="no predicted masks"):
        evaluate_folders(tmp_path / "pred", SAMPLES)
