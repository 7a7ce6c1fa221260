"""What batch prediction writes for each image: a result record, and a list of output writers.

A writer names the files it makes for an image, adds its columns to the image's row of the run's table,
and writes its files. :func:`standard_writers` gives ``predict``'s own outputs; other outputs (a DICOM
SEG, a row of measurements) are writers too, passed to :func:`skinnet.inference.predict.predict_files`.
Writers travel to cluster workers, so they must pickle: plain objects holding settings, no open files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.data.io import write_mask, write_png
from skinnet.data.layout import mask_file_name
from skinnet.inference.overlay import overlay


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
