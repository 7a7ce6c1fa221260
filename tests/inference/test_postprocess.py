"""Largest-component and hole-filling post-processing, and choosing it on out-of-fold results."""

from __future__ import annotations

import numpy as np

from skinnet.inference.postprocess import (
    apply_postprocessing,
    choose_postprocessing,
    fill_holes,
    largest_component,
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
