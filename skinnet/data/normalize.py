"""The network's input: colour constancy and normalisation, shared by training and inference.

No albumentations here: inference (and so ``import skinnet``) needs only NumPy for this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from skinnet.config import DataConfig


def shades_of_gray(images: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Shades-of-Gray colour constancy (Finlayson & Trezzi, 2004), as used for dermoscopy by Barata et al.
    (2015, IEEE JBHI) and in the ISIC challenges.

    The illuminant of each image is the Minkowski ``power``-mean of each channel over its pixels (``power=1``
    is Grey World, infinity is max-RGB); each channel is divided by its illuminant component, scaled so that a
    neutral (grey) illuminant leaves the image unchanged.

    Args:
        images: ``uint8 (..., H, W, 3)``, one image or a batch.
        power: the Minkowski norm ``p`` (6 in the references above).

    Returns:
        The corrected images, ``uint8``, same shape.
    """
    pixels = images.astype(np.float32) / 255.0
    illuminant = np.mean(pixels**power, axis=(-3, -2), keepdims=True) ** (1.0 / power)
    # a grey illuminant (equal components) maps to gain 1 in every channel
    gain = np.mean(illuminant, axis=-1, keepdims=True) / np.maximum(illuminant, 1e-6)
    return np.clip(np.round(images.astype(np.float32) * gain), 0, 255).astype(np.uint8)


def prepare_input(images: np.ndarray, config: DataConfig) -> np.ndarray:
    """The network's input from resized ``uint8 (..., S, S, 3)`` images: colour constancy, then normalisation.

    Training (after augmentation) and inference both call this, so that the two never differ.
    """
    if config.color_constancy == "shades_of_gray":  # the names are config.COLOR_CONSTANCY
        images = shades_of_gray(images)
    return normalize(images, config.mean, config.std)


def normalize(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``uint8 (..., H, W, C)`` → ``float32 (..., C, H, W)`` standardised per channel (0-255 statistics)."""
    array = (images.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(np.moveaxis(array, -1, -3))
