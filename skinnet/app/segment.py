"""One upload from bytes to result, in a worker thread: decode, segment, measure, score, encode.

The server's routes only admit and answer; everything that touches the image happens here, so that it can be
run (and stopped, when the client goes away) off the event loop.
"""

from __future__ import annotations

import io
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np
from PIL import Image

from skinnet.clinical.confidence import uncertainty_png
from skinnet.clinical.findings import Finding, ModelInfo, find
from skinnet.data.io import InputError, read_source
from skinnet.inference.predictor import Predictor


class ApiError(Exception):
    """An error answered as ``{"detail", "code"}`` JSON with ``status``."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


@dataclass
class Segmentation:
    """What one upload gave: the table row, the PNGs the answer carries, and the seconds it took."""

    finding: Finding
    source_format: str
    png: bytes
    uncertainty_png: bytes | None
    display_png: bytes | None
    seconds: float


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_id(filename: str | None) -> str:
    """A safe id from an uploaded file name: no directories, no extension, only ``[A-Za-z0-9._-]``."""
    stem = PureWindowsPath(filename or "").name.rsplit(".", 1)[0]  # also splits POSIX paths
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem).strip("._")[:100] or "image"


class ClientGone(Exception):
    """The client closed its connection: its image is not (or no further) computed."""


def segment_upload(predictor: Predictor, data: bytes, name: str, model: ModelInfo,
                   pixel_spacing: float | None = None, with_uncertainty: bool = False,
                   gone: threading.Event | None = None) -> Segmentation:
    """Decode, segment, measure, score and encode; runs in the worker threads.

    ``gone`` is set by the event loop when the client goes away; the work stops at the next step.
    """
    gone = gone or threading.Event()
    if gone.is_set():
        raise ClientGone
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skinnet-upload-") as tmp:
        # read_source takes a path; reusing it keeps one set of decoding rules (EXIF, modes, bomb limits, DICOM).
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        try:
            source = read_source(path)
        except InputError as err:
            raise ApiError(422, "invalid_image", f"{name}: {public_text(err.reason, tmp, name)}") from err
        except Exception as err:  # a decoder failure on untrusted bytes is the upload's fault, not ours
            raise ApiError(422, "invalid_image", f"{name}: cannot decode ({type(err).__name__}: "
                                                 f"{public_text(str(err), tmp, name)})") from err
    if gone.is_set():
        raise ClientGone
    # The model's own threshold and post-processing, as `skinnet predict` applies them.
    probability = predictor.predict_proba(source.pixels)
    if gone.is_set():
        raise ClientGone
    mask = predictor.to_mask(probability)
    finding, uncertainty = find(predictor, source.pixels, probability, mask, model, source, pixel_spacing,
                                with_uncertainty)
    is_dicom = source.dataset is not None
    mask_png = png_bytes(np.where(mask, 255, 0).astype(np.uint8))
    return Segmentation(finding, "dicom" if is_dicom else "image", mask_png,
                        None if uncertainty is None else png_bytes(uncertainty_png(uncertainty)),
                        png_bytes(source.pixels) if is_dicom else None, time.perf_counter() - started)


def public_text(text: str, tmp: str, name: str) -> str:
    """``text`` with the server's temporary paths replaced by the upload's name: they are not the client's."""
    return re.sub(re.escape(tmp) + r"[^\s'\"),;]*", name, text).replace(tempfile.gettempdir(), "<tmp>")
