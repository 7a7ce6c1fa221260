"""Confidence scores on maps with known answers, and the flip views they are computed from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage

from skinnet.clinical.confidence import (
    WORK_SIDE,
    assess,
    margin_score,
    pixel_margin,
    tta_score,
    uncertainty_map,
    uncertainty_png,
)
from skinnet.config import load_config
from skinnet.data.io import read_image
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics
from skinnet.networks import build_model


def square(size: int = 200, top: int = 60, side: int = 80) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, top : top + side] = True
    return mask


def test_a_sharp_outline_is_surer_than_a_blurred_one() -> None:
    mask = square()
    sharp = np.where(mask, 0.99, 0.01).astype(np.float32)
    # Away from the outline every map is as sure as the sharp one; only the band around the outline differs.
    assert margin_score(sharp, mask, 0.5) == pytest.approx(0.98, abs=1e-5)
    scores = [margin_score(ndimage.gaussian_filter(sharp, sigma), mask, 0.5) for sigma in (1, 3, 6, 12)]
    assert all(a > b for a, b in itertools.pairwise(scores)), scores
    assert scores[-1] < 0.5


def test_margin_is_measured_from_the_models_threshold() -> None:
    mask = square()
    probability = np.where(mask, 0.6, 0.1).astype(np.float32)
    # Threshold 0.2: lesion pixels are (0.6 - 0.2) / 0.8 = 0.5 sure, background (0.2 - 0.1) / 0.2 = 0.5 sure.
    assert margin_score(probability, mask, 0.2) == pytest.approx(0.5, abs=1e-6)
    np.testing.assert_allclose(pixel_margin(np.array([0.0, 0.2, 0.6, 1.0]), 0.2), [1.0, 0.0, 0.5, 1.0], atol=1e-6)


def test_tta_agreement_known_answer() -> None:
    """Three views see square A, the fourth the same square shifted 10 px: the consensus (mean > 0.5) is A.

    |A| = |B| = 1600 and |A ∩ B| = 30 x 40 = 1200, so Dice(B, A) = 2400 / 3200 = 0.75 and the mean Dice of
    the four views with the consensus is (3 x 1 + 0.75) / 4 = 0.9375.
    """
    a = np.zeros((100, 100), dtype=bool)
    a[30:70, 30:70] = True
    b = np.roll(a, 10, axis=1)
    views = np.stack([a, a, a, b]).astype(np.float32)
    assert image_metrics(a, b)["DC"] == pytest.approx(0.75)
    assert tta_score(views, 0.5) == pytest.approx(0.9375)
    assert tta_score(np.stack([a] * 4).astype(np.float32), 0.5) == 1.0
    assert tta_score(np.zeros((4, 50, 50), np.float32), 0.5) == 0.0  # nothing found: no agreement counts


def test_assess_flags_low_scores_empty_and_full_masks() -> None:
    mask = square()
    blurred = ndimage.gaussian_filter(np.where(mask, 0.99, 0.01).astype(np.float32), 10)
    sure = assess("margin", 0.3, np.where(mask, 0.99, 0.01), mask, 0.5)
    assert not sure.flagged and sure.reason is None and sure.score > 0.9
    unsure = assess("margin", 0.9, blurred, mask, 0.5)
    assert unsure.flagged and "below 0.90" in unsure.reason
    empty = assess("margin", 0.0, np.zeros((50, 50)), np.zeros((50, 50), bool), 0.5)
    assert (empty.score, empty.flagged, empty.reason) == (0.0, True, "no lesion found")
    full = assess("tta", 0.0, np.ones((50, 50)), np.ones((50, 50), bool), 0.5, np.ones((4, 50, 50)))
    assert full.flagged and full.reason == "the lesion fills the image"
    with pytest.raises(ValueError, match="unknown confidence method"):
        assess("entropy", 0.5, blurred, mask, 0.5)
    with pytest.raises(ValueError, match="flip views"):
        assess("tta", 0.5, blurred, mask, 0.5)


def test_scores_do_not_depend_on_resolution() -> None:
    small = square(200, 60, 80)
    large = np.kron(small, np.ones((4, 4), bool))  # the same picture at 800 px
    probability = ndimage.gaussian_filter(np.where(small, 0.95, 0.05).astype(np.float32), 3)
    large_probability = ndimage.zoom(probability, 4, order=1)
    assert margin_score(large_probability, large, 0.5) == pytest.approx(margin_score(probability, small, 0.5),
                                                                        abs=0.02)


def test_uncertainty_maps() -> None:
    mask = square()
    probability = ndimage.gaussian_filter(np.where(mask, 0.99, 0.01).astype(np.float32), 3)
    margin_map = uncertainty_map("margin", probability, 0.5)
    assert margin_map.shape == probability.shape and margin_map.min() >= 0 and margin_map.max() <= 1
    assert margin_map[100, 100] < 0.05 and margin_map[60, 100] > 0.8  # sure inside, unsure at the edge
    views = np.stack([mask, mask, np.roll(mask, 5, axis=0), mask]).astype(np.float32)[:, ::2, ::2]
    tta_map = uncertainty_map("tta", probability, 0.5, views)
    assert tta_map.shape == probability.shape
    # Where one view of four disagrees, the sd of (1, 1, 1, 0) is sqrt(3)/4: the map shows twice that.
    assert tta_map[62, 100] == pytest.approx(np.sqrt(3) / 2, abs=0.05) and tta_map[100, 100] == 0
    png = uncertainty_png(np.array([[0.0, 0.5], [1.0, 1.5]]))
    assert png.dtype == np.uint8 and png.tolist() == [[0, 128], [255, 255]]


@pytest.fixture(scope="module")
def random_segmenter() -> Segmenter:
    torch.manual_seed(0)
    config = load_config(None, ["model.width=4", "data.image_size=64"])
    return Segmenter(build_model(config.model).eval(), config, torch.device("cpu"), tta=True)


def test_views_are_what_tta_averages(random_segmenter: Segmenter, sample_data) -> None:
    images = [read_image(path) for path in sorted((sample_data / "images").glob("*.jpg"))[:3]]
    views = random_segmenter.predict_views_batch(images)
    for image, stack, mean in zip(images, views, random_segmenter.predict_proba_batch(images), strict=True):
        assert stack.shape == (4, *image.shape[:2])
        np.testing.assert_allclose(stack.mean(axis=0), mean, atol=1e-6)
        assert not np.allclose(stack[0], stack[1])  # a random network is not flip-invariant: real views
    small = random_segmenter.predict_views_batch([np.zeros((300, 600, 3), np.uint8)], WORK_SIDE)[0]
    assert small.shape == (4, 128, 256)


def test_ensemble_views_are_every_members(random_segmenter: Segmenter, sample_data) -> None:
    torch.manual_seed(1)
    other = Segmenter(build_model(random_segmenter.config.model).eval(), random_segmenter.config,
                      torch.device("cpu"), tta=True)
    ensemble = Ensemble([random_segmenter, other])
    image = read_image(sorted((sample_data / "images").glob("*.jpg"))[0])
    views = ensemble.predict_views_batch([image])[0]
    assert views.shape == (8, *image.shape[:2])
    np.testing.assert_allclose(views.mean(axis=0), ensemble.predict_proba(image), atol=1e-6)
