"""Shades-of-Gray colour constancy and the one input path shared by training and inference, on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skinnet.config import DataConfig
from skinnet.data.cache import resize_image
from skinnet.data.io import read_image
from skinnet.data.normalize import normalize, prepare_input, shades_of_gray


@pytest.fixture(scope="module")
def images(sample_data: Path) -> np.ndarray:
    paths = sorted((sample_data / "images").glob("*.jpg"))[:4]
    return np.stack([resize_image(read_image(p), 128) for p in paths])


def illuminant(image: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Finlayson & Trezzi's estimate, written out independently: the Minkowski p-mean of each channel."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    return np.mean(pixels**power, axis=0) ** (1 / power)


def test_a_colour_cast_is_removed(images: np.ndarray) -> None:
    image = images[0]
    cast = np.clip(np.round(image * np.array([1.0, 0.8, 0.6])), 0, 255).astype(np.uint8)  # a warm light
    before = illuminant(cast)
    assert before.max() / before.min() > 1.5
    corrected = illuminant(shades_of_gray(cast))
    assert corrected.max() / corrected.min() < 1.01  # a grey illuminant after correction
    # A diagonal cast is undone up to one brightness factor: the corrected images agree channel by channel.
    a, b = shades_of_gray(cast).astype(float), shades_of_gray(image).astype(float)
    ratio = a.reshape(-1, 3).sum(0) / b.reshape(-1, 3).sum(0)
    assert ratio.max() / ratio.min() < 1.03


def test_a_neutral_image_is_left_unchanged(images: np.ndarray) -> None:
    grey = np.repeat(images[0].mean(axis=-1, keepdims=True).round().astype(np.uint8), 3, axis=-1)
    np.testing.assert_array_equal(shades_of_gray(grey), grey)


def test_each_image_of_a_batch_has_its_own_illuminant(images: np.ndarray) -> None:
    batch = shades_of_gray(images)
    assert batch.dtype == np.uint8 and batch.shape == images.shape
    for image, corrected in zip(images, batch, strict=True):
        np.testing.assert_array_equal(corrected, shades_of_gray(image))


def test_training_and_inference_input_follows_the_config(images: np.ndarray) -> None:
    plain, sog = DataConfig(), DataConfig(color_constancy="shades_of_gray")
    np.testing.assert_array_equal(prepare_input(images, plain), normalize(images, plain.mean, plain.std))
    np.testing.assert_array_equal(prepare_input(images, sog), normalize(shades_of_gray(images), sog.mean, sog.std))
    assert prepare_input(images, sog).shape == (4, 3, 128, 128)
