"""Batch prediction of files and folders: every good file gets a mask, every bad one is reported."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinnet.data.io import InputError, read_image, write_mask, write_png
from skinnet.data.layout import find_images
from skinnet.inference.overlay import overlay
from skinnet.inference.segmenter import Segmenter


@dataclass
class PredictionReport:
    """Files written and files that failed, with the reason."""

    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def mask_name(image: Path) -> str:
    """ISIC naming: ``X.jpg`` → ``X_segmentation.png``."""
    return f"{image.stem}_segmentation.png"


def predict_files(segmenter: Segmenter, inputs: Iterable[str | Path], out_dir: str | Path,
                  with_overlay: bool = False, with_probability: bool = False,
                  strict: bool = False) -> PredictionReport:
    """Write ``<id>_segmentation.png`` (0/255, the input's size) for each image of ``inputs`` into ``out_dir``.

    Args:
        segmenter: the model to run.
        inputs: image files and folders of images.
        out_dir: where masks (and overlays ``<id>_overlay.png``) go.
        with_overlay: also write the image with the lesion outlined.
        with_probability: also write the lesion probability as ``<id>_probability.png`` (0-255).
        strict: stop at the first bad file instead of reporting it and going on.
    """
    out_dir = Path(out_dir)
    report = PredictionReport()
    for path in find_images(inputs):
        try:
            image = read_image(path)
        except InputError as err:
            if strict:
                raise
            report.failed.append(str(err))
            continue
        probability = segmenter.predict_proba(image)
        mask = segmenter.to_mask(probability)
        target = out_dir / mask_name(path)
        write_mask(target, mask)
        report.written.append(target)
        if with_probability:
            write_png(out_dir / f"{path.stem}_probability.png", np.round(probability * 255).astype(np.uint8))
        if with_overlay:
            write_png(out_dir / f"{path.stem}_overlay.png", overlay(image, mask))
    return report
