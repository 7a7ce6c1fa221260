"""Training augmentation (albumentations), imported only where training needs it.

The normalisation shared with inference is in :mod:`skinnet.data.normalize`, so that inference never imports
albumentations.
"""

from __future__ import annotations

import os

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

