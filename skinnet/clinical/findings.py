"""What is reported about one segmented image: measurements, confidence and the model, as one table row.

``skinnet predict --measurements results.csv`` writes one row per image (columns :data:`TABLE_FIELDS`)
through :class:`skinnet.batch.writers.FindingsWriter`, and the JSON API returns the same fields
(:func:`find`). Lengths are in pixels and, where the pixel spacing is known, in millimetres (see
:mod:`skinnet.clinical.measurements`); the column names carry the units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.clinical.confidence import WORK_SIDE, Confidence, assess, uncertainty_map
from skinnet.clinical.measurements import Measurements, PixelSpacing, measure, spacing_pair
from skinnet.data.atomic import file_sha256
from skinnet.inference.predictor import Predictor

# Where a pixel spacing came from when the user gave it (the file's own spacing wins where it has one).
USER_SPACING = "user"
MEASUREMENT_FIELDS = [f.name for f in fields(Measurements) if f.name != "pixel_spacing_mm"]
# One row per image: the image, its scale, every measurement (unit in the name), the confidence, the model.
ROW_FIELDS = ["width_px", "height_px", "pixel_spacing_row_mm", "pixel_spacing_column_mm", "spacing_source",
              *MEASUREMENT_FIELDS, "confidence", "confidence_method", "confidence_threshold", "flagged",
              "flag_reason", "model_file", "model_sha256", "model_runtime"]
TABLE_FIELDS = ["id", "file", *ROW_FIELDS]


@dataclass(frozen=True)
class ModelInfo:
    """Which model made a result: its file(s) and SHA-256 (``;``-separated for a fold ensemble), and what ran
    it: ``runtime``, the backend and precision (e.g. ``"onnx int8"``; empty where unknown)."""

    file: str
    sha256: str
    runtime: str = ""

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> ModelInfo:
        return cls(";".join(str(path) for path in paths), ";".join(file_sha256(path) for path in paths))

    @classmethod
    def of(cls, predictor: Predictor) -> ModelInfo:
        """The model files a Segmenter or an Ensemble was loaded from (empty for a model held in memory)."""
        files = cls.from_files(predictor.model_files)
        return cls(files.file, files.sha256, str(getattr(predictor, "runtime", "")))

    @property
    def version(self) -> str:
        """A short version for labels: the first 16 hex digits of the (first) SHA-256."""
        return self.sha256.split(";")[0][:16]


@dataclass(frozen=True)
class Finding:
    """Everything reported about one image."""

    width: int
    height: int
    spacing_source: str | None
    measurements: Measurements
    confidence: Confidence
    model: ModelInfo

    def row(self) -> dict[str, Any]:
        """The image's columns of the batch table (:data:`ROW_FIELDS`); ``None`` where unknown."""
        spacing = self.measurements.pixel_spacing_mm or (None, None)
        measured = self.measurements.to_dict()
        return {"width_px": self.width, "height_px": self.height, "pixel_spacing_row_mm": spacing[0],
                "pixel_spacing_column_mm": spacing[1], "spacing_source": self.spacing_source,
                **{key: measured[key] for key in MEASUREMENT_FIELDS},
                "confidence": self.confidence.score, "confidence_method": self.confidence.method,
                "confidence_threshold": self.confidence.threshold, "flagged": self.confidence.flagged,
                "flag_reason": self.confidence.reason, "model_file": self.model.file,
                "model_sha256": self.model.sha256, "model_runtime": self.model.runtime}


def find(predictor: Predictor, image: np.ndarray, probability: np.ndarray, mask: np.ndarray, model: ModelInfo,
         source: Any = None, pixel_spacing: PixelSpacing | None = None,
         with_uncertainty: bool = False) -> tuple[Finding, np.ndarray | None]:
    """Measure and score one prediction.

    Args:
        predictor: the :class:`~skinnet.inference.segmenter.Segmenter` or ensemble that predicted it (its
            config gives the confidence method and threshold; ``tta`` runs its flip views).
        image: the RGB ``uint8`` image.
        probability: the lesion probability at the image's size.
        mask: the predicted mask, as written.
        model: the model's identity.
        source: the file as read (:class:`skinnet.data.dicom.SourceImage`), with its own pixel spacing if
            any; ``None`` for a plain image.
        pixel_spacing: mm per pixel for images whose file gives none (the file's own spacing wins).
        with_uncertainty: also return the uncertainty map (``[0, 1]``, the image's size).

    Returns:
        The finding, and the uncertainty map or ``None``.
    """
    spacing = getattr(source, "pixel_spacing_mm", None)
    spacing_source = getattr(source, "spacing_source", None)
    if spacing is None and pixel_spacing is not None:
        spacing, spacing_source = spacing_pair(pixel_spacing), USER_SPACING
    inference = predictor.config.inference
    threshold = float(predictor.threshold)
    views = None
    if inference.confidence == "tta":
        views = predictor.predict_views_batch([image], WORK_SIDE)[0]
    confidence = assess(inference.confidence, inference.confidence_threshold, probability, mask, threshold, views)
    height, width = mask.shape
    finding = Finding(width, height, spacing_source, measure(mask, image, spacing), confidence, model)
    uncertainty = None
    if with_uncertainty:
        uncertainty = uncertainty_map(inference.confidence, probability, threshold, views)
    return finding, uncertainty
