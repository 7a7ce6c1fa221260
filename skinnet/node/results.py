"""The results of one image: its DICOM Segmentation and its measurement report (SR), with derived UIDs.

The same code makes them for the node (:mod:`skinnet.node.service`) and for ``skinnet predict`` with DICOMweb
(:class:`DicomResultsWriter`), so the two give the same objects for the same image and model: the UIDs come
from :func:`result_uids`, the pixels from the same predictor.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.batch.writers import ImageResult, OutputWriter
from skinnet.clinical.dicom_seg import build_dicom_seg
from skinnet.clinical.dicom_sr import build_measurement_report, derived_uid
from skinnet.clinical.findings import Finding, ModelInfo, find
from skinnet.data.atomic import atomic_path
from skinnet.inference.predictor import Predictor

SEG_FILE, SR_FILE = "1-seg.dcm", "2-sr.dcm"


def settings_key(predictor: Predictor) -> str:
    """The predictor's choices that change a mask (backend precision, TTA, threshold, post-processing), as
    part of the result UIDs: another setting gives other objects, the same setting the same ones."""
    return json.dumps(predictor.describe(), sort_keys=True)


def result_uids(source: Any, model: ModelInfo, settings: str) -> dict[str, str]:
    """The SEG's and the SR's series and instance UIDs for a source dataset, a model and its settings.

    Series are per source series (all SEGs of one series and model in one series; the same for SRs).
    """
    instance, series = str(source.SOPInstanceUID), str(source.SeriesInstanceUID)
    return {"seg_series": derived_uid(series, model.sha256, settings, "seg series"),
            "seg": derived_uid(instance, model.sha256, settings, "seg"),
            "sr_series": derived_uid(series, model.sha256, settings, "sr series"),
            "sr": derived_uid(instance, model.sha256, settings, "sr")}


@dataclass(frozen=True)
class DicomResults:
    """One image's SEG and SR (highdicom datasets) and the finding they hold."""

    seg: Any
    sr: Any
    finding: Finding

    def encoded(self) -> dict[str, bytes]:
        """``{file name: DICOM file bytes}``, the SEG first."""
        out = {}
        for name, dataset in ((SEG_FILE, self.seg), (SR_FILE, self.sr)):
            buffer = io.BytesIO()
            dataset.save_as(buffer, enforce_file_format=True)
            out[name] = buffer.getvalue()
        return out

    def info(self) -> dict[str, Any]:
        return {"source": str(self.seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
                              .ReferencedSOPInstanceUID),
                "study": str(self.seg.StudyInstanceUID),
                "results": [str(self.seg.SOPInstanceUID), str(self.sr.SOPInstanceUID)],
                "flagged": self.finding.confidence.flagged}


def make_results(predictor: Predictor, model: ModelInfo, settings: str, source: Any, probability: np.ndarray,
                 mask: np.ndarray) -> DicomResults:
    """Measure one prediction and build its SEG and SR.

    Args:
        predictor: the model that predicted it (its confidence method runs here).
        model: the model's files and SHA-256.
        settings: :func:`settings_key` of the predictor.
        source: the image as read (:class:`skinnet.data.dicom.SourceImage`, with its dataset).
        probability: the lesion probability at the image's size.
        mask: the mask.
    """
    finding, _ = find(predictor, source.pixels, probability, mask, model, source)
    dataset = source.dataset
    uids = result_uids(dataset, model, settings)
    number = int(dataset.get("InstanceNumber") or 1)
    name = ";".join(Path(part).name for part in model.file.split(";")) if model.file else "model"
    seg = build_dicom_seg(dataset, mask, name, model.version or "unknown", uids["seg_series"], uids["seg"],
                          number)
    sr = build_measurement_report(dataset, seg, finding, uids["sr_series"], uids["sr"], number)
    return DicomResults(seg, sr, finding)


def seg_name(image_id: str) -> str:
    return f"{image_id}_seg.dcm"


def sr_name(image_id: str) -> str:
    return f"{image_id}_sr.dcm"


class DicomResultsWriter(OutputWriter):
    """``<id>_seg.dcm`` and ``<id>_sr.dcm`` of a ``predict`` run, the objects the node makes for the image.

    Args:
        predictor: the run's model.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.model = ModelInfo.of(predictor)
        self.settings = settings_key(predictor)

    def files(self, image_id: str) -> list[str]:
        return [seg_name(image_id), sr_name(image_id)]

    def fields(self, result: ImageResult) -> dict[str, Any]:
        return {"dicom_seg": seg_name(result.id), "dicom_sr": sr_name(result.id)}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        if getattr(result.source, "dataset", None) is None:
            raise ValueError(f"{result.path}: not read as DICOM, so no DICOM result can reference it")
        results = make_results(self.predictor, self.model, self.settings, result.source, result.probability,
                               result.mask)
        for (_, data), name in zip(results.encoded().items(), self.files(result.id), strict=True):
            with atomic_path(out_dir / name) as tmp:
                Path(tmp).write_bytes(data)

    def identity(self) -> dict[str, Any]:
        return {"writer": type(self).__name__}
