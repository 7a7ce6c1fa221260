"""Augmentation (albumentations) and the normalisation shared by training and inference."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations would ask the network at import

import albumentations as A
import cv2

from skinnet.config import DataConfig


def training_augmentation(config: DataConfig, seed: int) -> A.Compose:
    """Rotation, flips, translation, scaling and colour shift, as in the paper, on image and mask together.

    Borders are filled by reflection so that rotated corners look like skin, not black frames.
    """
    shift = config.color_shift
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(
                rotate=(-config.rotate_limit, config.rotate_limit),
                translate_percent=(-config.shift_limit, config.shift_limit),
                scale=(1 - config.scale_limit, 1 + config.scale_limit),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.8,
            ),
            A.ColorJitter(
                brightness=shift, contrast=shift, saturation=shift, hue=shift / 4, p=0.8
            ),
        ],
        seed=seed,
    )


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
