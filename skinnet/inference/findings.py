"""What is reported about one segmented image: measurements, confidence and the model, as one table row.

``skinnet predict --measurements results.csv`` writes one row per image (columns :data:`TABLE_FIELDS`)
through :class:`FindingsWriter`, and the JSON API returns the same fields (:func:`find`). Lengths are in
pixels and, where the pixel spacing is known, in millimetres (see :mod:`skinnet.inference.measurements`);
the column names carry the units.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.data.io import write_csv, write_png
from skinnet.inference.confidence import WORK_SIDE, Confidence, assess, uncertainty_map, uncertainty_png
from skinnet.inference.manifest import file_sha256
from skinnet.inference.measurements import Measurements, PixelSpacing, measure, spacing_pair
from skinnet.inference.outputs import ImageResult, OutputWriter
from skinnet.inference.predictor import Predictor

# Where a pixel spacing came from when the user gave it (the file's own spacing wins where it has one).
USER_SPACING = "user"
MEASUREMENT_FIELDS = [f.name for f in fields(Measurements) if f.name != "pixel_spacing_mm"]
# One row per image: the image, its scale, every measurement (unit in the name), the confidence, the model.
ROW_FIELDS = ["width_px", "height_px", "pixel_spacing_row_mm", "pixel_spacing_column_mm", "spacing_source",
              *MEASUREMENT_FIELDS, "confidence", "confidence_method", "confidence_threshold", "flagged",
              "flag_reason", "model_file", "model_sha256"]
TABLE_FIELDS = ["id", "file", *ROW_FIELDS]


@dataclass(frozen=True)
class ModelInfo:
    """Which model made a result: its file(s) and SHA-256 (``;``-separated for a fold ensemble)."""

    file: str
    sha256: str

    @classmethod
    def from_files(cls, paths: Sequence[str | Path]) -> ModelInfo:
        return cls(";".join(str(path) for path in paths), ";".join(file_sha256(path) for path in paths))

    @classmethod
    def of(cls, segmenter: Predictor) -> ModelInfo:
        """The model files a segmenter or an ensemble was loaded from (empty for a model held in memory)."""
        return cls.from_files(segmenter.model_files)

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
                "model_sha256": self.model.sha256}


def model_threshold(segmenter: Predictor) -> float:
    """The probability above which a pixel is lesion, for a segmenter or an ensemble."""
    return float(segmenter.threshold)


def find(segmenter: Predictor, image: np.ndarray, probability: np.ndarray, mask: np.ndarray, model: ModelInfo,
         source: Any = None, pixel_spacing: PixelSpacing | None = None,
         with_uncertainty: bool = False) -> tuple[Finding, np.ndarray | None]:
    """Measure and score one prediction.

    Args:
        segmenter: the :class:`~skinnet.inference.segmenter.Segmenter` or ensemble that predicted it (its
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
    inference = segmenter.config.inference
    threshold = model_threshold(segmenter)
    views = None
    if inference.confidence == "tta":
        views = segmenter.predict_views_batch([image], WORK_SIDE)[0]
    confidence = assess(inference.confidence, inference.confidence_threshold, probability, mask, threshold, views)
    height, width = mask.shape
    finding = Finding(width, height, spacing_source, measure(mask, image, spacing), confidence, model)
    uncertainty = None
    if with_uncertainty:
        uncertainty = uncertainty_map(inference.confidence, probability, threshold, views)
    return finding, uncertainty


class FindingsWriter(OutputWriter):
    """Adds each image's measurements, confidence and model to its table row; optionally writes its
    uncertainty map, ``<id>_uncertainty.png`` (0 sure to 255 unsure).

    Args:
        segmenter: the model of the run (the ``tta`` confidence runs its flip views).
        pixel_spacing: mm per pixel for images whose file gives none.
        uncertainty: also write ``<id>_uncertainty.png``.
        spec: the run's :class:`~skinnet.inference.model_spec.ModelSpec`, for cluster workers, which
            receive this writer without the segmenter and load the model from the spec.
    """

    def __init__(self, segmenter: Predictor, pixel_spacing: PixelSpacing | None = None, uncertainty: bool = False,
                 spec: Any = None) -> None:
        self.segmenter = segmenter
        # Absolute, as the cluster engine sends it: a worker then finds the model it loaded for the run.
        self.spec = spec.absolute() if spec is not None else None
        self.model = ModelInfo.of(segmenter)
        self.pixel_spacing = spacing_pair(pixel_spacing)
        self.uncertainty = uncertainty
        inference = segmenter.config.inference
        self.settings = {"confidence": inference.confidence, "threshold": inference.confidence_threshold,
                         "pixel_spacing": self.pixel_spacing, "uncertainty": uncertainty}
        self._maps: dict[str, np.ndarray] = {}  # from fields() to write(), per image (commit runs both)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "segmenter": None, "_maps": {}}

    def _segmenter(self) -> Predictor:
        if self.segmenter is None:  # on a cluster worker: the model the worker loaded for this run
            from skinnet.inference.dask_engine import _worker_segmenter

            self.segmenter = _worker_segmenter(self.spec)
        return self.segmenter

    def files(self, image_id: str) -> list[str]:
        return [f"{image_id}_uncertainty.png"] if self.uncertainty else []

    def fields(self, result: ImageResult) -> dict[str, Any]:
        finding, uncertainty = find(self._segmenter(), result.image, result.probability, result.mask, self.model,
                                    result.source, self.pixel_spacing, self.uncertainty)
        if uncertainty is not None:
            self._maps[result.id] = uncertainty
        return finding.row()

    def write(self, result: ImageResult, out_dir: Path) -> None:
        uncertainty = self._maps.pop(result.id, None)
        if self.uncertainty and uncertainty is not None:
            write_png(out_dir / self.files(result.id)[0], uncertainty_png(uncertainty))

    def identity(self) -> dict[str, Any]:
        return {"writer": type(self).__name__, **self.settings}


def write_measurements(table: str | Path, out: str | Path) -> int:
    """Write the one-row-per-image measurement table ``out`` from a run's table (``predictions.csv``).

    Images that failed are left out (the run lists them); images an earlier run of the same model finished
    are in, from its journal. Returns the number of rows.
    """
    with open(table, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("status") == "ok"]
    out_rows = [{"id": row["id"], "file": row.get("image", ""), **{key: row.get(key, "") for key in ROW_FIELDS}}
                for row in rows]
    write_csv(out, out_rows, TABLE_FIELDS)
    return len(out_rows)


def predict_outputs(segmenter: Predictor, with_overlay: bool = False, with_probability: bool = False,
                    measurements: bool = False, uncertainty: bool = False, dicom_seg: bool = False,
                    pixel_spacing: PixelSpacing | None = None,
                    spec: Any = None) -> tuple[list[OutputWriter] | None, Any]:
    """The writers and the reader of a ``predict`` run with the clinical outputs asked for.

    Args:
        segmenter: the run's model.
        with_overlay: ``<id>_overlay.png``.
        with_probability: ``<id>_probability.png``.
        measurements: measurements, confidence and model in each image's table row (``--measurements``).
        uncertainty: ``<id>_uncertainty.png`` (and the same row).
        dicom_seg: ``<id>_seg.dcm``; inputs must then be DICOM.
        pixel_spacing: mm per pixel for images whose file gives none.
        spec: the run's model spec (cluster workers load the model from it).

    Returns:
        ``(writers, reader)`` for :func:`skinnet.inference.predict.predict_files`: ``(None, read_image)``
        when no clinical output is asked for (the standard outputs, read as before).

    Raises:
        ConfigError: a pixel spacing without a measurement table, or one that is not positive.
    """
    from skinnet.config import ConfigError
    from skinnet.data.dicom import read_dicom_only, read_source
    from skinnet.data.io import read_image
    from skinnet.inference.dicom_seg import DicomSegWriter
    from skinnet.inference.outputs import standard_writers

    if pixel_spacing is not None and not (measurements or uncertainty):
        raise ConfigError("--pixel-spacing only scales the measurement table: add --measurements FILE.csv")
    try:
        pixel_spacing = spacing_pair(pixel_spacing)
    except ValueError as err:
        raise ConfigError(f"--pixel-spacing: {err}") from err
    if not (measurements or uncertainty or dicom_seg):
        return None, read_image
    *extras, mask = standard_writers(with_overlay, with_probability)
    if measurements or uncertainty:
        extras.append(FindingsWriter(segmenter, pixel_spacing, uncertainty, spec))
    if dicom_seg:
        try:
            import highdicom  # noqa: F401 - checked here, before any image is segmented
        except ImportError as err:  # pragma: no cover - highdicom is in requirements.txt
            raise ConfigError("--dicom-seg needs highdicom (pip install -r requirements.txt)") from err
        extras.append(DicomSegWriter(ModelInfo.of(segmenter)))
    return [*extras, mask], read_dicom_only if dicom_seg else read_source
