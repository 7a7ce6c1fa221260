"""The Predictor base class: one interface for the Segmenter, the Ensemble and any other model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from skinnet.config import ConfigError, load_config
from skinnet.data.io import read_image
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.postprocess import apply_postprocessing, threshold_mask
from skinnet.inference.predictor import Predictor
from skinnet.inference.segmenter import Segmenter


class Gradient(Predictor):
    """Only the abstract method: the lesion probability rises from 0 at the left edge to 1 at the right."""

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.tile(np.linspace(0, 1, image.shape[1], dtype=np.float32), (image.shape[0], 1))
                for image in images]


def sample_images(sample_data: Path, count: int = 4) -> list[np.ndarray]:
    return [read_image(path) for path in sorted((sample_data / "images").glob("*.jpg"))[:count]]


def test_predict_proba_batch_is_what_a_predictor_must_implement() -> None:
    class Incomplete(Predictor):
        pass

    with pytest.raises(TypeError, match="predict_proba_batch"):
        Incomplete(load_config(None))  # type: ignore[abstract]


def test_segmenter_and_ensemble_are_predictors(tiny_model: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    ensemble = Ensemble([segmenter])
    assert isinstance(segmenter, Predictor) and isinstance(ensemble, Predictor)
    assert ensemble.config is segmenter.config and ensemble.model_files == segmenter.model_files == [tiny_model]


def test_an_ensemble_of_one_model_gives_that_models_masks(tiny_model: Path, sample_data: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    ensemble = Ensemble.from_files([tiny_model], device="cpu")
    images = sample_images(sample_data)
    for image, alone, together in zip(images, segmenter.predict_proba_batch(images),
                                      ensemble.predict_proba_batch(images), strict=True):
        np.testing.assert_array_equal(alone, together)
        np.testing.assert_array_equal(segmenter.predict(image), ensemble.predict(image))
    assert ensemble.threshold == segmenter.threshold == segmenter.config.inference.threshold


def test_a_subclass_with_only_probabilities_gets_masks(sample_data: Path) -> None:
    config = load_config(None, ["inference.threshold=0.5"])
    predictor = Gradient(config, postprocess=[])
    image = sample_images(sample_data, 1)[0]
    probability = predictor.predict_proba(image)
    assert probability.shape == image.shape[:2]
    mask = predictor.predict(image)
    assert mask.dtype == bool and mask.shape == image.shape[:2]
    np.testing.assert_array_equal(mask, probability > 0.5)
    np.testing.assert_array_equal(predictor.to_mask(probability), mask)
    assert predictor.model_files == [] and predictor.device == "unknown"


def test_to_mask_applies_the_threshold_fallback_and_postprocessing_given() -> None:
    config = load_config(None, ["inference.threshold=0.5", "inference.empty_fallback=true"])
    predictor = Gradient(config, postprocess=["largest_component"], threshold=0.9)
    probability = np.zeros((20, 30), np.float32)
    probability[2:5, 2:5], probability[10:18, 10:20] = 0.95, 0.8  # a small sure region, a large unsure one
    expected = apply_postprocessing(threshold_mask(probability, 0.9, True), ["largest_component"])
    np.testing.assert_array_equal(predictor.to_mask(probability), expected)
    assert predictor.to_mask(probability).sum() == 9
    # Nothing above the threshold: the empty-mask fallback of the config gives the most probable region.
    assert predictor.to_mask(np.where(probability > 0.9, 0.0, probability)).any()


def test_the_config_threshold_is_read_when_used() -> None:
    config = load_config(None, ["inference.threshold=0.5"])
    predictor = Gradient(config, postprocess=[])
    config.inference.threshold = 0.25
    assert predictor.threshold == 0.25


def test_unknown_postprocessing_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown post-processing"):
        Gradient(load_config(None), postprocess=["smooth"])


def test_default_views_are_the_flips_predicted_and_flipped_back() -> None:
    image = np.zeros((300, 500, 3), np.uint8)
    views = Gradient(load_config(None), postprocess=[]).predict_views_batch([image])[0]
    assert views.shape == (4, 300, 500) and views.dtype == np.float32
    ramp = np.linspace(0, 1, 500, dtype=np.float32)
    np.testing.assert_allclose(views[0][0], ramp)
    np.testing.assert_allclose(views[1][0], ramp[::-1])  # predicted mirrored, so its ramp runs the other way
    np.testing.assert_allclose(views[2], views[0])
    np.testing.assert_allclose(views[3], views[1])
    small = Gradient(load_config(None), postprocess=[]).predict_views_batch([image], max_side=100)[0]
    assert small.shape == (4, 60, 100)
