"""Our metrics against the official scorer, isic-challenge-scoring 5.6.0, on real ISIC masks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from skinnet.data.io import read_mask
from skinnet.metrics import image_metrics, mean_metrics
from skinnet.scoring import evaluate_folders

isic = pytest.importorskip("isic_challenge_scoring", reason="the official scorer is a test dependency")
from isic_challenge_scoring import metrics as official  # noqa: E402
from isic_challenge_scoring.confusion import create_binary_confusion_matrix  # noqa: E402
from isic_challenge_scoring.segmentation import SegmentationScore  # noqa: E402

OFFICIAL_NAMES = {"AC": "accuracy", "SE": "sensitivity", "SP": "specificity", "JI": "jaccard",
                  "TJI": "threshold_jaccard", "DC": "dice"}


def official_image_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    cm = create_binary_confusion_matrix(truth_binary_values=truth > 128, prediction_binary_values=pred > 128)
    return {
        "AC": official.binary_accuracy(cm), "SE": official.binary_sensitivity(cm),
        "SP": official.binary_specificity(cm), "JI": official.binary_jaccard(cm),
        "TJI": official.binary_threshold_jaccard(cm, threshold=0.65), "DC": official.binary_dice(cm),
    }


def perturbations(truth: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Predictions of every quality from a 0/255 truth: eroded, dilated, shifted, noisy, empty, full, soft."""
    lesion = truth > 128
    soft = ndimage.gaussian_filter(lesion.astype(float), 6) * 255  # gray levels around the >128 cut
    noisy = lesion ^ (rng.random(lesion.shape) < 0.05)
    masks = [
        ndimage.binary_erosion(lesion, iterations=6), ndimage.binary_dilation(lesion, iterations=9),
        np.roll(lesion, (17, -11), axis=(0, 1)), noisy, np.zeros_like(lesion), np.ones_like(lesion),
    ]
    return [np.where(m, 255, 0).astype(np.uint8) for m in masks] + [soft.round().astype(np.uint8)]


@pytest.fixture(scope="module")
def scored_folders(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> tuple[Path, Path]:
    """Real masks (plus empty ones) as truth; each truth gets one perturbed prediction in turn."""
    rng = np.random.default_rng(0)
    truth_dir = tmp_path_factory.mktemp("truth")
    pred_dir = tmp_path_factory.mktemp("pred")
    masks = sorted((sample_data / "masks").glob("*.png"))
    pairs: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, path in enumerate(masks):
        truth = np.asarray(Image.open(path))
        pairs.append((path.stem.removesuffix("_segmentation"), truth, perturbations(truth, rng)[i % 7]))
    empty = np.zeros((96, 128), np.uint8)
    blob = empty.copy()
    blob[10:20, 30:50] = 255
    # Empty truth: empty prediction (1.0 by convention), and a false-positive prediction.
    pairs += [("ISIC_9000001", empty, empty), ("ISIC_9000002", empty, blob), ("ISIC_9000003", blob, empty)]
    for key, truth, pred in pairs:
        Image.fromarray(truth).save(truth_dir / f"{key}_segmentation.png")
        Image.fromarray(pred).save(pred_dir / f"{key}_segmentation.png")
    return truth_dir, pred_dir


def test_per_image_metrics_equal_the_official_scorer(sample_data: Path) -> None:
    rng = np.random.default_rng(1)
    checked = 0
    for path in sorted((sample_data / "masks").glob("*.png"))[:12]:
        truth = np.asarray(Image.open(path))
        for pred in perturbations(truth, rng):
            ours = image_metrics(truth > 128, pred > 128)
            theirs = official_image_metrics(truth, pred)
            for name, value in theirs.items():
                assert ours[name] == pytest.approx(value, abs=1e-6), (path.name, name)
            checked += 1
    assert checked == 12 * 7


def test_empty_masks_follow_the_official_conventions() -> None:
    empty = np.zeros((8, 8), np.uint8)
    full = np.full((8, 8), 255, np.uint8)
    for truth, pred in [(empty, empty), (empty, full), (full, empty), (full, full)]:
        ours = image_metrics(truth > 128, pred > 128)
        theirs = official_image_metrics(truth, pred)
        assert ours == pytest.approx(theirs, abs=1e-12)
    assert image_metrics(empty > 0, empty > 0)["DC"] == 1.0


def test_folder_evaluation_equals_the_official_macro_average(scored_folders: tuple[Path, Path]) -> None:
    truth_dir, pred_dir = scored_folders
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # soft predictions warn that they are binarised at > 128
        ours = evaluate_folders(pred_dir, truth_dir)
    assert not ours.problems and len(ours.rows) == 43
    theirs = SegmentationScore.from_dir(truth_dir, pred_dir).macro_average
    for name, official_name in OFFICIAL_NAMES.items():
        assert ours.summary[name] == pytest.approx(float(theirs[official_name]), abs=1e-6), name
    # the set is varied: the check would catch a wrong convention
    dice = pd.Series([row["DC"] for row in ours.rows])
    assert dice.min() < 0.5 < dice.max() and (dice == 1.0).any()


def test_soft_masks_are_binarised_above_128(tmp_path: Path) -> None:
    gray = np.array([[0, 128, 129, 255]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "m.png")
    with pytest.warns(UserWarning, match="binarised at > 128"):
        assert read_mask(tmp_path / "m.png").tolist() == [[False, False, True, True]]


def test_mean_metrics_is_a_macro_average() -> None:
    rows = [{"AC": 1.0, "DC": 0.5, "JI": 0.2, "SE": 1, "SP": 1, "TJI": 0}, {"AC": 0.0, "DC": 1.0, "JI": 0.4,
                                                                          "SE": 0, "SP": 0, "TJI": 1}]
    summary = mean_metrics(rows)
    assert summary["n"] == 2 and summary["DC"] == 0.75 and summary["JI"] == pytest.approx(0.3)
