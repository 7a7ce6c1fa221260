"""What batch prediction writes for each image: a result record, and a list of output writers.

A writer names the files it makes for an image, adds its columns to the image's row of the run's table,
and writes its files. :func:`standard_writers` gives ``predict``'s own outputs; other outputs (a DICOM
SEG, a row of measurements) are writers too, passed to :func:`skinnet.batch.run.predict_files`.
Writers travel to cluster workers, so they must pickle: plain objects holding settings, no open files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.clinical.confidence import uncertainty_png
from skinnet.clinical.dicom_seg import write_dicom_seg
from skinnet.clinical.findings import ROW_FIELDS, TABLE_FIELDS, ModelInfo, find
from skinnet.clinical.measurements import PixelSpacing, spacing_pair
from skinnet.clinical.overlay import overlay
from skinnet.data.io import read_csv, write_csv, write_mask, write_png
from skinnet.data.layout import mask_file_name
from skinnet.inference.predictor import Predictor


def mask_name(image: Path) -> str:
    """ISIC naming: ``X.jpg`` → ``X_segmentation.png``."""
    return mask_file_name(image.stem)


@dataclass
class ImageResult:
    """One predicted image: what every writer needs.

    Attributes:
        id: the image ID (file name without extension), unique in a run.
        path: the input file.
        image: the RGB ``uint8 (H, W, 3)`` image as read (EXIF orientation applied).
        probability: lesion probability ``float32 (H, W)``.
        mask: the boolean lesion mask ``(H, W)`` after threshold and post-processing.
        fields: the image's row in the run's table, filled by the writers' :meth:`OutputWriter.fields`.
        source: what the reader returned, where it gave more than pixels (an object with a ``pixels``
            attribute, e.g. a DICOM dataset and its pixel spacing); ``None`` otherwise.
    """

    id: str
    path: Path
    image: np.ndarray
    probability: np.ndarray
    mask: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    source: Any = None


class OutputWriter:
    """Base of the output writers: by default no files and no columns."""

    def files(self, image_id: str) -> list[str]:
        """Names of the files written into the output folder for ``image_id``."""
        return []

    def fields(self, result: ImageResult) -> dict[str, Any]:
        """Columns this writer adds to the image's table row (computed before any file is written)."""
        return {}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        """Write this writer's files for ``result`` into ``out_dir``, each atomically."""

    def identity(self) -> dict[str, Any]:
        """What this writer's outputs depend on besides the model (a changed value recomputes them)."""
        return {"writer": type(self).__name__}


class ProbabilityWriter(OutputWriter):
    """``<id>_probability.png``: the lesion probability scaled to 0-255."""

    def files(self, image_id: str) -> list[str]:
        return [f"{image_id}_probability.png"]

    def fields(self, result: ImageResult) -> dict[str, Any]:
        return {"probability": self.files(result.id)[0]}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        write_png(out_dir / self.files(result.id)[0], np.round(result.probability * 255).astype(np.uint8))


class OverlayWriter(OutputWriter):
    """``<id>_overlay.png``: the image with the lesion tinted and outlined."""

    def files(self, image_id: str) -> list[str]:
        return [f"{image_id}_overlay.png"]

    def fields(self, result: ImageResult) -> dict[str, Any]:
        return {"overlay": self.files(result.id)[0]}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        write_png(out_dir / self.files(result.id)[0], overlay(result.image, result.mask))


class MaskWriter(OutputWriter):
    """``<id>_segmentation.png``: the 0/255 mask at the input's size (ISIC naming)."""

    def files(self, image_id: str) -> list[str]:
        return [mask_file_name(image_id)]

    def fields(self, result: ImageResult) -> dict[str, Any]:
        return {"mask": self.files(result.id)[0]}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        write_mask(out_dir / self.files(result.id)[0], result.mask)


def standard_writers(with_overlay: bool = False, with_probability: bool = False) -> list[OutputWriter]:
    """``predict``'s outputs: probability and overlay if asked, and the mask, written last."""
    writers: list[OutputWriter] = []
    if with_probability:
        writers.append(ProbabilityWriter())
    if with_overlay:
        writers.append(OverlayWriter())
    return [*writers, MaskWriter()]


def seg_name(image_id: str) -> str:
    """The SEG's file name for an image ID: ``<id>_seg.dcm``."""
    return f"{image_id}_seg.dcm"


class DicomSegWriter(OutputWriter):
    """``<id>_seg.dcm``: the mask as a DICOM Segmentation of the DICOM input it was predicted from.

    Runs with this writer read their inputs with :func:`skinnet.data.dicom.read_dicom_only`, so an input
    that is not DICOM fails with a one-line reason instead of lacking its SEG.

    Args:
        model: the model's identity (its file and SHA-256 name the algorithm and its version).
    """

    def __init__(self, model: Any) -> None:
        self.name = Path(model.file.split(";")[0]).name if model.file else "model"
        self.version = model.version or "unknown"

    def files(self, image_id: str) -> list[str]:
        return [seg_name(image_id)]

    def fields(self, result: ImageResult) -> dict[str, Any]:
        return {"dicom_seg": seg_name(result.id)}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        dataset = getattr(result.source, "dataset", None)
        if dataset is None:  # the reader lets only DICOM through; a caller's own reader may not
            raise ValueError(f"{result.path}: not read as DICOM, so no DICOM Segmentation can reference it")
        write_dicom_seg(out_dir / seg_name(result.id), dataset, result.mask, self.name, self.version)

    def identity(self) -> dict[str, Any]:
        return {"writer": type(self).__name__}


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
            from skinnet.batch.dask import _worker_segmenter

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
    are in, from its journal. A shard's table (``predictions.shard-K-of-N.csv``) names its run in a
    ``run_key`` column: so does the measurement table then, for merge-shards. Returns the number of rows.
    """
    columns, rows = read_csv(table)
    key = ["run_key"] if "run_key" in columns else []
    out_rows = [{"id": row["id"], "file": row.get("image", ""),
                 **{name: row.get(name, "") for name in [*ROW_FIELDS, *key]}}
                for row in rows if row.get("status") == "ok"]
    write_csv(out, out_rows, [*TABLE_FIELDS, *key])
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
        ``(writers, reader)`` for :func:`skinnet.batch.run.predict_files`: ``(None, read_image)``
        when no clinical output is asked for (the standard outputs, read as before).

    Raises:
        ConfigError: a pixel spacing without a measurement table, or one that is not positive.
    """
    from skinnet.config import ConfigError
    from skinnet.data.dicom import read_dicom_only, read_source
    from skinnet.data.io import read_image

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
