"""How far to trust one predicted outline: a per-image confidence score, a flag, and an uncertainty map.

Two scores, each in ``[0, 1]`` (1 = sure), from what the model itself says; neither needs the truth:

* ``margin``: the probability margin along the outline. In a band around the predicted outline (pixels
  within ``BAND_FRACTION`` of the image's shorter side of it, inside or out), the mean of
  ``|p - t| / (1 - t)`` where ``p > t`` and ``(t - p) / t`` elsewhere, for the lesion probability ``p`` and
  the model's threshold ``t`` (``|2p - 1|`` for ``t = 0.5``). A model sure of its outline has probabilities
  near 0 and 1 right up to it; a faint or ambiguous border leaves a wide band of values near ``t``. Free:
  it reads the probability map already computed.
* ``tta``: agreement of the flip views. The image and its three flips (left-right, up-down, both; for a fold
  ensemble, those of every fold model) are segmented separately (each view thresholded at ``t``); the score
  is the mean Dice coefficient of each view's mask with the mask of their mean probability. Costs four
  forward passes per model when the model does not use flip TTA already.

Both are computed on maps shrunk to at most ``WORK_SIDE`` pixels on the longer side, so they do not depend
on the image's resolution. An empty mask, or one filling the whole image, has no outline to judge; every
dermoscopy image shows a lesion, so both mean a failure: they score 0 and are always flagged.

A result is flagged ("check this outline") when its score falls below the threshold saved with the model
(``inference.confidence_threshold``, for the method ``inference.confidence``). Which score predicts a low
Dice better, and the threshold, are chosen on out-of-fold predictions of a cross-validation run with
``benchmarks/confidence_oof.py`` (Spearman correlation with per-image Dice, share of images below DC 0.7
caught, false alarms), which writes them into the model file; the shipped model holds its own. The
defaults in :mod:`skinnet.config` serve a model made without that choice.

The uncertainty map (``--uncertainty``) shows, per pixel, ``1 - margin`` (method ``margin``) or twice the
standard deviation of the views' probabilities (method ``tta``), 0 sure to 1 unsure, at the image's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy import ndimage

from skinnet.config import CONFIDENCE_METHODS
from skinnet.inference.predictor import view_size
from skinnet.metrics import image_metrics

WORK_SIDE = 256
BAND_FRACTION = 0.02


@dataclass(frozen=True)
class Confidence:
    """One outline's confidence.

    Attributes:
        score: in ``[0, 1]``, higher is surer.
        method: ``margin`` or ``tta``.
        threshold: below it, the outline is flagged.
        flagged: check this outline.
        reason: why it is flagged (``None`` when it is not).
    """

    score: float
    method: str
    threshold: float
    flagged: bool
    reason: str | None

    def to_dict(self) -> dict[str, float | str | bool | None]:
        return asdict(self)


def _shrink(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == shape:
        return array.astype(np.float32, copy=False)
    return cv2.resize(array.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def pixel_margin(probability: np.ndarray, threshold: float) -> np.ndarray:
    """Per pixel, how far the probability lies from the threshold, scaled to ``[0, 1]`` on each side."""
    p = np.asarray(probability, dtype=np.float32)
    return np.where(p > threshold, (p - threshold) / (1 - threshold), (threshold - p) / threshold).clip(0, 1)


def no_outline(mask: np.ndarray) -> str | None:
    """Why a mask has no outline to judge ("no lesion found", "the lesion fills the image"), or ``None``."""
    if not mask.any():
        return "no lesion found"
    if mask.all():
        return "the lesion fills the image"
    return None


def margin_score(probability: np.ndarray, mask: np.ndarray, threshold: float) -> float:
    """The ``margin`` score: mean probability margin in a band around the outline of ``mask`` (0 if none)."""
    if no_outline(mask):
        return 0.0
    shape = view_size(*mask.shape[:2], WORK_SIDE)
    small = _shrink(mask, shape) >= 0.5
    if no_outline(small):  # a lesion too small (or a background too thin) to survive the shrinking
        small = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        if no_outline(small):
            return 0.0
    radius = max(1.0, BAND_FRACTION * min(shape))
    band = np.where(small, ndimage.distance_transform_edt(small), ndimage.distance_transform_edt(~small)) <= radius
    return float(pixel_margin(_shrink(probability, shape), threshold)[band].mean())


def tta_score(views: np.ndarray, threshold: float) -> float:
    """The ``tta`` score of ``(V, h, w)`` view probabilities: mean Dice of each view's mask with the consensus."""
    consensus = views.mean(axis=0) > threshold
    if no_outline(consensus):
        return 0.0
    return float(np.mean([image_metrics(consensus, view > threshold)["DC"] for view in views]))


def assess(method: str, threshold: float, probability: np.ndarray, mask: np.ndarray, model_threshold: float,
           views: np.ndarray | None = None) -> Confidence:
    """Score one prediction and flag it.

    Args:
        method: ``margin`` or ``tta``.
        threshold: the flagging threshold of that score.
        probability: the lesion probability the mask came from, at the image's size.
        mask: the predicted (post-processed) mask, as shown to the user.
        model_threshold: the probability above which a pixel is lesion.
        views: for ``tta``: the view probabilities (:meth:`Segmenter.predict_views_batch`, shrunk).

    Raises:
        ValueError: an unknown method, or ``tta`` without views.
    """
    if method not in CONFIDENCE_METHODS:
        raise ValueError(f"unknown confidence method {method!r}; choose one of {', '.join(CONFIDENCE_METHODS)}")
    missing = no_outline(mask)
    if method == "margin":
        score = margin_score(probability, mask, model_threshold)
    elif views is None:
        raise ValueError("the tta confidence needs the flip views (predict_views_batch)")
    else:
        score = tta_score(views, model_threshold)
    if missing:
        return Confidence(0.0, method, threshold, True, missing)
    flagged = score < threshold
    reason = f"{method} confidence {score:.2f} is below {threshold:.2f}" if flagged else None
    return Confidence(score, method, threshold, flagged, reason)


def uncertainty_map(method: str, probability: np.ndarray, model_threshold: float,
                    views: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel uncertainty in ``[0, 1]`` at the probability's size (see the module docstring)."""
    if method == "margin":
        return 1.0 - pixel_margin(probability, model_threshold)
    if views is None:
        raise ValueError("the tta uncertainty map needs the flip views (predict_views_batch)")
    spread = (2.0 * views.std(axis=0)).clip(0, 1).astype(np.float32)
    height, width = probability.shape[:2]
    return cv2.resize(spread, (width, height), interpolation=cv2.INTER_LINEAR)


def uncertainty_png(uncertainty: np.ndarray) -> np.ndarray:
    """The map as 8-bit gray (0 sure, 255 unsure), for ``<id>_uncertainty.png``."""
    return np.round(np.clip(uncertainty, 0, 1) * 255).astype(np.uint8)
