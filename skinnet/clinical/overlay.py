"""Pictures for people: the image with the lesion outlined."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def outline(mask: np.ndarray, thickness: int = 2) -> np.ndarray:
    """Boolean boundary band of a mask, ``thickness`` pixels wide, inside the lesion."""
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    eroded = ndimage.binary_erosion(mask, iterations=thickness, border_value=0)
    return mask & ~eroded


def overlay(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (0, 255, 0),
            alpha: float = 0.25, truth: np.ndarray | None = None) -> np.ndarray:
    """RGB image with the mask tinted and outlined; an optional ground truth is outlined in blue.

    The outline thickness scales with the image (about 0.4% of the shorter side).
    """
    thickness = max(1, round(min(mask.shape) / 250))
    out = image.astype(np.float32).copy()
    out[mask] = (1 - alpha) * out[mask] + alpha * np.asarray(color, np.float32)
    out[outline(mask, thickness)] = color
    if truth is not None:
        out[outline(truth, thickness)] = (0, 96, 255)
    return out.astype(np.uint8)
