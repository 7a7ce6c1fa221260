"""Largest-component and hole-filling post-processing, the empty-mask fallback, and choosing them on
out-of-fold results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from skinnet.inference.postprocess import (
    apply_postprocessing,
    choose_postprocessing,
    fill_holes,
    largest_component,
    most_probable_region,
    threshold_mask,
)


def test_largest_component_keeps_only_the_biggest_blob() -> None:
    mask = np.zeros((20, 20), bool)
    mask[2:10, 2:10] = True  # 64 px
    mask[14:17, 14:17] = True  # 9 px
    mask[12, 2] = True  # 1 px
    kept = largest_component(mask)
    assert kept.sum() == 64 and kept[5, 5] and not kept[15, 15] and not kept[12, 2]
    assert not largest_component(np.zeros((4, 4), bool)).any()


def test_diagonal_neighbours_belong_to_one_component() -> None:
    mask = np.eye(6, dtype=bool)
    assert largest_component(mask).sum() == 6


def test_fill_holes_fills_enclosed_background_only() -> None:
    ring = np.zeros((9, 9), bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False  # enclosed hole
    ring[2, 4] = False  # notch open to the outside
    filled = fill_holes(ring)
    assert filled[4, 4] and not filled[2, 4]



@pytest.mark.parametrize("density", [0.3, 0.5, 0.6, 0.7, 0.9])
def test_fill_holes_equals_scipys_binary_fill_holes(density: float) -> None:
    """Oracle: scipy.ndimage.binary_fill_holes, on random masks (many holes, edges, odd shapes) and blobs."""
    rng = np.random.default_rng(int(density * 100))
    for shape in [(1, 1), (1, 7), (7, 1), (2, 2), (37, 53), (128, 96)]:
        mask = rng.random(shape) < density
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    blobs = ndimage.gaussian_filter(rng.random((256, 192)), 4) > 0.5 - (0.5 - density) * 0.05
    np.testing.assert_array_equal(fill_holes(blobs), ndimage.binary_fill_holes(blobs))
    assert fill_holes(blobs).dtype == bool

def test_choice_keeps_a_step_only_where_it_raises_mean_dice() -> None:
    truth = np.zeros((30, 30), bool)
    truth[5:25, 5:25] = True
    speckled = truth.copy()
    speckled[0, 0] = speckled[29, 29] = True  # false positives far away
    kept, scores = choose_postprocessing([truth, truth], [speckled, speckled])
    assert kept == ["largest_component"] and scores["largest_component"] > scores["none"]
    # On a clean prediction nothing helps, so nothing is kept.
    kept, _ = choose_postprocessing([truth], [truth])
    assert kept == []
    assert apply_postprocessing(speckled, ["largest_component", "fill_holes"]).sum() == truth.sum()


def test_fallback_keeps_the_region_around_the_most_probable_pixel() -> None:
    probability = np.full((40, 40), 0.05, np.float32)
    probability[5:15, 5:15] = 0.30  # a faint lesion that never passes 0.5
    probability[9, 9] = 0.40
    probability[25:35, 25:35] = 0.18  # weaker, and under half the peak: not taken
    probability[30:33, 2:5] = 0.30  # as strong, but not connected to the peak
    region = most_probable_region(probability)
    expected = np.zeros((40, 40), bool)
    expected[5:15, 5:15] = True
    np.testing.assert_array_equal(region, expected)


def test_threshold_mask_falls_back_only_when_nothing_passes() -> None:
    probability = np.zeros((20, 20), np.float32)
    probability[2:6, 2:6] = 0.3
    assert not threshold_mask(probability, 0.5).any()  # the plain argmax is empty
    assert threshold_mask(probability, 0.5, empty_fallback=True).sum() == 16
    probability[10:12, 10:12] = 0.9  # once something passes, the fallback changes nothing
    np.testing.assert_array_equal(threshold_mask(probability, 0.5, empty_fallback=True), probability > 0.5)
    assert not threshold_mask(np.zeros((5, 5), np.float32), 0.5, empty_fallback=True).any()
