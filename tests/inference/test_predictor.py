"""The Predictor base class: one interface for the Segmenter, the Ensemble and any other model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


BAD_IMAGES = {
    # name: (the image, the error type, a part of its message)
    "float 0-1": (lambda rgb: rgb.astype(np.float32) / 255, ValueError, "a float32 array; expected an RGB image"),
    "float 0-255": (lambda rgb: rgb.astype(np.float64), ValueError, "np.round(image * 255).astype(np.uint8)"),
    "uint16": (lambda rgb: rgb.astype(np.uint16) * 257, ValueError, "a uint16 array"),
    "NaN": (lambda rgb: np.full(rgb.shape, np.nan, np.float32), ValueError, "a float32 array"),
    "inf": (lambda rgb: np.full(rgb.shape, np.inf), ValueError, "a float64 array"),
    "int64": (lambda rgb: rgb.astype(np.int64), ValueError, "a int64 array"),
    "bool": (lambda rgb: rgb > 128, ValueError, "a bool array"),
    "float16": (lambda rgb: rgb.astype(np.float16), ValueError, "a float16 array"),
    "channel-first": (lambda rgb: np.ascontiguousarray(rgb.transpose(2, 0, 1)), ValueError, "channel-first"),
    "two channels": (lambda rgb: rgb[..., :2], ValueError, "shape (256, 256, 2)"),
    "4-D": (lambda rgb: rgb[None, None], ValueError, "shape (1, 1, 256, 256, 3)"),
    "0x0": (lambda rgb: rgb[:0, :0], ValueError, "an empty image (0x0 pixels)"),
    "a list": (lambda rgb: rgb.tolist(), TypeError, "got a list"),
    "a string": (lambda rgb: "lesion.jpg", TypeError, "got a str"),
    "PIL 16-bit": (lambda rgb: Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), ValueError,
                   "a PIL image of mode I;16"),
    "too long": (lambda rgb: np.zeros((2, 20_000, 3), np.uint8), ValueError, "longer than the limit of 16,384"),
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_images_are_checked_at_the_door(tiny_model: Path, sample_data: Path, name: str) -> None:
    make, error, words = BAD_IMAGES[name]
    bad = make(sample_images(sample_data, 1)[0])
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    gradient = Gradient(load_config(None), postprocess=[])  # only predict_proba_batch: the base class checks
    for call in (segmenter.predict, segmenter.predict_proba, lambda image: segmenter.predict_proba_batch([image]),
                 lambda image: segmenter.predict_views_batch([image]),
                 lambda image: Ensemble([segmenter]).predict_proba_batch([image]), gradient.predict,
                 lambda image: gradient.predict_views_batch([image])):
        with pytest.raises(error) as caught:
            call(bad)
        message = str(caught.value)
        assert words in message and "\n" not in message, message


def test_a_batch_must_be_a_list_of_images(tiny_model: Path, sample_data: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    image = sample_images(sample_data, 1)[0]
    with pytest.raises(TypeError, match=r"of shape \(256, 256, 3\) \(for one image, use predict_proba"):
        segmenter.predict_proba_batch(image)
    stacked = segmenter.predict_proba_batch(np.stack([image, image]))  # (N, H, W, 3) is a batch
    np.testing.assert_allclose(stacked[1], segmenter.predict_proba(image), atol=1e-6)


def test_clearly_defined_inputs_are_converted(tiny_model: Path, sample_data: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    rgb = sample_images(sample_data, 1)[0]
    gray = rgb[..., 1]
    expected_gray = segmenter.predict_proba(np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(segmenter.predict_proba(gray), expected_gray)
    np.testing.assert_array_equal(segmenter.predict_proba(gray[..., None]), expected_gray)
    np.testing.assert_array_equal(segmenter.predict_proba(PILImage.fromarray(gray)), expected_gray)
    np.testing.assert_array_equal(segmenter.predict_proba(PILImage.fromarray(rgb)), segmenter.predict_proba(rgb))
    # RGBA: composited on black, the pixels read_image gives for the same PNG file.
    alpha = np.linspace(0, 255, rgb.shape[1]).astype(np.uint8)[None, :].repeat(rgb.shape[0], axis=0)
    rgba = np.dstack([rgb, alpha])
    PILImage.fromarray(rgba, "RGBA").save(path := tmp_path / "alpha.png")
    np.testing.assert_array_equal(segmenter.predict_proba(rgba), segmenter.predict_proba(read_image(path)))
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(segmenter.predict_proba(opaque), segmenter.predict_proba(rgb))


@pytest.mark.parametrize("options, words", [
    ({"batch_size": 0}, "batch_size must be a whole number of at least 1, got 0"),
    ({"batch_size": -1}, "got -1"), ({"batch_size": 2.5}, "got 2.5"), ({"batch_size": True}, "got True"),
    ({"tta": "no"}, "tta must be True, False or None, got 'no'"), ({"tta": 1}, "got 1"),
    ({"postprocess": "fill_holes"}, "a list of step names"),
])
def test_bad_arguments_are_refused_before_anything_runs(tiny_model: Path, options: dict, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Segmenter.from_file(tiny_model, device="cpu", **options)
    assert words in str(caught.value)
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    with pytest.raises(ConfigError, match=words.split(",")[0].split(" got")[0]):
        Segmenter(segmenter.backend, segmenter.config, **options)


def test_tta_off_stays_off_and_thresholds_are_checked(tiny_model: Path) -> None:
    assert Segmenter.from_file(tiny_model, device="cpu", tta=False).tta is False
    assert Segmenter.from_file(tiny_model, device="cpu", tta=np.bool_(True)).tta is True
    for bad in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ConfigError, match="threshold must be a number from 0 to 1"):
            Gradient(load_config(None), threshold=bad)
    with pytest.raises(TypeError, match="a list of model files"):
        Ensemble.from_files(str(tiny_model), device="cpu")
