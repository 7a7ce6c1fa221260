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
from skinnet.clinical.dicom_seg import build_dicom_seg, save_dicom_seg, source_problem
from skinnet.clinical.findings import ROW_FIELDS, TABLE_FIELDS, ModelInfo, find
from skinnet.clinical.measurements import PixelSpacing, spacing_pair
from skinnet.clinical.overlay import overlay
from skinnet.data.atomic import write_mask, write_png
from skinnet.data.checks import one_line
from skinnet.data.io import InputError
from skinnet.data.layout import mask_file_name
from skinnet.data.tables import read_csv, write_csv
from skinnet.inference.predictor import Predictor


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
        predictor: the model that predicted it, for writers that ask it more (the flip views of the ``tta``
            confidence); on a cluster worker, the model that worker loaded.
    """

    id: str
    path: Path
    image: np.ndarray
    probability: np.ndarray
    mask: np.ndarray
    fields: dict[str, Any] = field(default_factory=dict)
    source: Any = None
    predictor: Predictor | None = None


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


def read_seg_source(path: Path) -> Any:
    """The reader of runs that write SEGs: :func:`skinnet.data.io.read_dicom_only`, also refusing a DICOM
    file that lacks what a SEG must reference (:func:`skinnet.clinical.dicom_seg.source_problem`), so that
    the image fails in one line before anything of it is written or recorded."""
    from skinnet.data.io import read_dicom_only

    source = read_dicom_only(path)
    problem = source_problem(source.dataset)
    if problem:
        raise InputError(path, problem)
    return source


class DicomSegWriter(OutputWriter):
    """``<id>_seg.dcm``: the mask as a DICOM Segmentation of the DICOM input it was predicted from.

    Runs with this writer read their inputs with :func:`read_seg_source`, so an input that is not DICOM, or
    lacks the identifiers a SEG references, fails with a one-line reason instead of lacking its SEG. The SEG
    is built in :meth:`fields`, before the image is recorded as done, so that whatever highdicom refuses
    fails the image rather than leaving a record without its file.

    Args:
        model: the model's identity (its file and SHA-256 name the algorithm and its version).
    """

    def __init__(self, model: Any) -> None:
        self.name = Path(model.file.split(";")[0]).name if model.file else "model"
        self.version = model.version or "unknown"
        self._segs: dict[str, Any] = {}  # from fields() to write(), per image (commit runs both)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_segs": {}}

    def files(self, image_id: str) -> list[str]:
        return [seg_name(image_id)]

    def fields(self, result: ImageResult) -> dict[str, Any]:
        dataset = getattr(result.source, "dataset", None)
        if dataset is None:  # the reader lets only DICOM through; a caller's own reader may not
            raise InputError(result.path, "not read as DICOM, so no DICOM Segmentation can reference it")
        try:
            self._segs[result.id] = build_dicom_seg(dataset, result.mask, self.name, self.version)
        except Exception as err:  # highdicom checks the source in its own ways
            raise InputError(result.path, f"cannot build its DICOM Segmentation ({type(err).__name__}: "
                                          f"{one_line(err, 200)})") from err
        return {"dicom_seg": seg_name(result.id)}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        seg = self._segs.pop(result.id, None)
        if seg is None:
            seg = build_dicom_seg(result.source.dataset, result.mask, self.name, self.version)
        save_dicom_seg(out_dir / seg_name(result.id), seg)

    def identity(self) -> dict[str, Any]:
        return {"writer": type(self).__name__}


class FindingsWriter(OutputWriter):
    """Adds each image's measurements, confidence and model to its table row; optionally writes its
    uncertainty map, ``<id>_uncertainty.png`` (0 sure to 255 unsure).

    The ``tta`` confidence runs the flip views of the predictor that made each result
    (:attr:`ImageResult.predictor`): on a cluster worker, the model that worker loaded.

    Args:
        predictor: the model of the run: its files and confidence settings, recorded in each row and in the
            run's identity.
        pixel_spacing: mm per pixel for images whose file gives none.
        uncertainty: also write ``<id>_uncertainty.png``.
    """

    def __init__(self, predictor: Predictor, pixel_spacing: PixelSpacing | None = None,
                 uncertainty: bool = False) -> None:
        self.model = ModelInfo.of(predictor)
        self.pixel_spacing = spacing_pair(pixel_spacing)
        self.uncertainty = uncertainty
        inference = predictor.config.inference
        self.settings = {"confidence": inference.confidence, "threshold": inference.confidence_threshold,
                         "pixel_spacing": self.pixel_spacing, "uncertainty": uncertainty}
        self._maps: dict[str, np.ndarray] = {}  # from fields() to write(), per image (commit runs both)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}

    def files(self, image_id: str) -> list[str]:
        return [f"{image_id}_uncertainty.png"] if self.uncertainty else []

    def fields(self, result: ImageResult) -> dict[str, Any]:
        if result.predictor is None:
            raise ValueError(f"{result.path}: a result without its predictor has no confidence to report")
        finding, uncertainty = find(result.predictor, result.image, result.probability, result.mask, self.model,
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
