"""Per-image segmentation metrics with the conventions of the official ISIC scorer.

``isic-challenge-scoring`` binarises both masks at ``> 128``, builds one confusion matrix per image and
averages each metric over images (macro mean). Where a metric's denominator is zero it scores 1.0:
sensitivity with no lesion pixels, specificity with no background pixels, Dice and Jaccard when both
masks are empty. The thresholded Jaccard (ISIC 2018) is the Jaccard where it is at least 0.65, else 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

METRIC_NAMES = ("AC", "DC", "JI", "SE", "SP", "TJI")
TJI_THRESHOLD = 0.65


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of one image."""

    tp: int
    tn: int
    fp: int
    fn: int

    @classmethod
    def from_masks(cls, truth: np.ndarray, prediction: np.ndarray) -> Confusion:
        """Count from two boolean masks of the same shape."""
        if truth.shape != prediction.shape:
            raise ValueError(f"mask shapes differ: truth {truth.shape}, prediction {prediction.shape}")
        truth = truth.astype(bool, copy=False)
        prediction = prediction.astype(bool, copy=False)
        tp = int(np.count_nonzero(truth & prediction))
        fp = int(np.count_nonzero(prediction)) - tp
        fn = int(np.count_nonzero(truth)) - tp
        return cls(tp=tp, tn=truth.size - tp - fp - fn, fp=fp, fn=fn)


def _ratio(numerator: float, denominator: float) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def confusion_metrics(c: Confusion) -> dict[str, float]:
    """AC, DC, JI, SE, SP and TJI of one confusion matrix."""
    jaccard = _ratio(c.tp, c.tp + c.fp + c.fn)
    return {
        "AC": (c.tp + c.tn) / (c.tp + c.tn + c.fp + c.fn),
        "DC": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "JI": jaccard,
        "SE": _ratio(c.tp, c.tp + c.fn),
        "SP": _ratio(c.tn, c.tn + c.fp),
        "TJI": jaccard if jaccard >= TJI_THRESHOLD else 0.0,
    }


def image_metrics(truth: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Metrics of one image from two boolean masks (binarise 0-255 masks with ``> 128`` first)."""
    return confusion_metrics(Confusion.from_masks(truth, prediction))


def mean_metrics(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Macro mean of per-image metric dicts; ``n`` is the number of images."""
    rows = list(rows)
    summary: dict[str, float] = {"n": len(rows)}
    for name in METRIC_NAMES:
        summary[name] = float(np.mean([row[name] for row in rows])) if rows else float("nan")
    return summary


def sample_sd(values: Iterable[float]) -> float:
    """Sample standard deviation (ddof = 1); NaN for fewer than two values."""
    values = list(values)
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
