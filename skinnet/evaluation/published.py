"""Published ISIC 2017 segmentation results, as listed in Table I of the SkinNet paper.

Source: S. Vesal, N. Ravikumar, A. Maier, "SkinNet: A Deep Learning Framework for Skin Lesion
Segmentation", IEEE NSS/MIC 2018 (arXiv:1806.09522), Table I. Every row was measured on the ISIC 2017
challenge test set (600 images); the other methods' numbers are the ones that table quotes.
"""

from __future__ import annotations

from dataclasses import dataclass

from skinnet.metrics import METRIC_NAMES

TABLE_METRICS = METRIC_NAMES[:5]  # Table I has no thresholded Jaccard
PUBLISHED_DATA = "ISIC 2017 test set (600 images)"
PUBLISHED_SOURCE = "Vesal et al. 2018, Table I (arXiv:1806.09522)"


@dataclass(frozen=True)
class PublishedRow:
    """One method's published means (accuracy, Dice, Jaccard, sensitivity, specificity)."""

    method: str
    AC: float
    DC: float
    JI: float
    SE: float
    SP: float

    def values(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in TABLE_METRICS}


PUBLISHED_ROWS = (
    PublishedRow("SkinNet (Vesal et al.)", 0.932, 0.851, 0.767, 0.930, 0.905),
    PublishedRow("Yuan et al.", 0.934, 0.849, 0.765, 0.825, 0.975),
    PublishedRow("Berseth", 0.932, 0.847, 0.762, 0.820, 0.978),
    PublishedRow("Auto-ED", 0.936, 0.824, 0.738, 0.836, 0.966),
    PublishedRow("LIN", 0.952, 0.839, 0.753, 0.855, 0.974),
)
