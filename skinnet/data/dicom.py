"""Reading single-frame colour DICOM images (dermoscopic and other visible-light photographs) with pydicom.

A DICOM file is recognised by its ``DICM`` marker (byte 128), whatever its name
(:func:`skinnet.data.formats.is_dicom`; :func:`skinnet.data.io.read_source` sends it here). What is read:

* single-frame images only: a multi-frame file is refused rather than silently reduced to its first frame;
* colour only: ``RGB``, ``YBR_FULL``, ``YBR_FULL_422`` (converted to RGB by pydicom), ``YBR_ICT`` and
  ``YBR_RCT`` (JPEG 2000; the decoder converts), ``PALETTE COLOR`` (through its lookup table);
  ``MONOCHROME1/2`` is refused, since the model needs colour;
* 8-bit samples as they are; more bits are scaled to 8 like 16-bit PNGs (:func:`skinnet.data.io.read_image`);
* native (uncompressed) pixel data and the compressed transfer syntaxes that pydicom's installed decoders
  handle: JPEG baseline and extended (Pillow, pylibjpeg-libjpeg), JPEG lossless (pylibjpeg-libjpeg),
  JPEG-LS (pyjpegls, pylibjpeg-libjpeg), JPEG 2000 (Pillow), RLE lossless (pydicom itself), deflate;
* the pixel spacing, for measurements in millimetres: ``PixelSpacing`` (0028,0030), else
  ``ImagerPixelSpacing`` (0018,1164), else the Pixel Measures of the shared functional groups; in mm,
  ``(row, column)`` (the distance between the centres of adjacent rows, then of adjacent columns).

Every problem is an :class:`~skinnet.data.checks.InputError` naming the file, so a batch reports it and goes on.
pydicom is imported only when a DICOM file is met.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.data.checks import UNOPENABLE, InputError, check_size, unopenable

COLOUR_INTERPRETATIONS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")


@dataclass(frozen=True)
class SourceImage:
    """A decoded input image and what its file says about it.

    Attributes:
        pixels: RGB ``uint8 (H, W, 3)``.
        pixel_spacing_mm: ``(row, column)`` spacing in mm, or ``None`` where the file gives none.
        spacing_source: the attribute the spacing came from (e.g. ``"PixelSpacing"``), or ``None``.
        dataset: for DICOM, the pydicom dataset (its pixel data removed): the source of a DICOM
            Segmentation; ``None`` for other formats.
    """

    pixels: np.ndarray
    pixel_spacing_mm: tuple[float, float] | None
    spacing_source: str | None
    dataset: Any = None


def pixel_spacing(dataset: Any) -> tuple[tuple[float, float] | None, str | None]:
    """``((row, column) mm, attribute name)`` of a dataset's pixel spacing, or ``(None, None)``.

    Values that are not two positive numbers are ignored (treated as absent).
    """
    candidates = [("PixelSpacing", dataset.get("PixelSpacing")),
                  ("ImagerPixelSpacing", dataset.get("ImagerPixelSpacing"))]
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared and "PixelMeasuresSequence" in shared[0] and shared[0].PixelMeasuresSequence:
        measures = shared[0].PixelMeasuresSequence[0]
        candidates.append(("PixelMeasuresSequence.PixelSpacing", measures.get("PixelSpacing")))
    for name, value in candidates:
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0 and np.isfinite([row, column]).all():
            return (row, column), name
    return None, None


def _sop_class(ds: Any) -> str:
    """The SOP class's name (e.g. "VL Photographic Image Storage"), or ``""`` where the file gives none."""
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(getattr(uid, "name", uid or ""))


def _cut_off(ds: Any, warned: bool) -> bool:
    """Whether the file ended inside an element: pydicom keeps what it read and at most warns.

    Args:
        ds: the dataset as read (elements not yet accessed are still raw, with their declared length).
        warned: pydicom warned that the file ended before a sequence or item delimiter.
    """
    meta = getattr(ds, "file_meta", None)
    if warned or meta is None or "TransferSyntaxUID" not in meta:
        return True
    tags = list(ds.keys())
    if not tags:
        return True
    last = ds.get_item(tags[-1])  # the element being read when the file ended, if it did
    length, value = getattr(last, "length", None), getattr(last, "value", None)
    return isinstance(value, bytes) and length is not None and length != 0xFFFFFFFF and len(value) < length


def _check_image(path: Path, ds: Any, cut_off: bool) -> None:
    """Refuse what this reader does not handle, before any decoding.

    Args:
        path: the file, for the messages.
        ds: its dataset.
        cut_off: pydicom met the end of the file inside an element.
    """
    if "PixelData" not in ds:
        other = next((k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds), None)
        sop_class = _sop_class(ds)
        if other:
            raise InputError(path, f"DICOM file has {other} (a parametric map), not an image")
        if cut_off:
            raise InputError(path, "truncated or corrupt DICOM file: it ends inside an element, before the "
                                   "pixel data is complete")
        hint = "; the file may be incomplete" if "Image" in sop_class else ", not an image"
        raise InputError(path, f"DICOM file has no pixel data ({sop_class or 'no SOP class'}{hint})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(path, f"multi-frame DICOM ({frames} frames): only single-frame images are read; "
                               "extract the frame to segment into its own file")
    interpretation = str(ds.get("PhotometricInterpretation", "")).strip()
    if interpretation not in COLOUR_INTERPRETATIONS:
        raise InputError(path, f"{interpretation or 'unknown'} DICOM image: a colour image is needed "
                               f"({', '.join(COLOUR_INTERPRETATIONS)})")
    rows, columns = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows < 1 or columns < 1:
        raise InputError(path, f"DICOM image of {columns}x{rows} pixels")
    check_size(path, columns, rows)


def _decode(path: Path, ds: Any) -> np.ndarray:
    """The first (only) frame as RGB ``uint8``."""
    from pydicom.pixels import apply_color_lut, get_decoder

    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            missing = "; ".join(decoder.missing_dependencies) if decoder else "no decoder exists in pydicom"
            raise InputError(path, f"cannot decode the transfer syntax {syntax.name} ({missing})")
    elif syntax is not None:  # native pixel data: a short value means the file was cut
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.BitsAllocated) // 8
        if len(ds.PixelData) < expected:
            raise InputError(path, f"truncated DICOM file: {len(ds.PixelData):,} of {expected:,} bytes of pixels")
    try:
        array = ds.pixel_array  # pydicom converts YBR_FULL and YBR_FULL_422 to RGB
    except Exception as err:  # decoders fail in many ways on short or damaged data
        raise InputError(path, f"corrupt or truncated DICOM pixel data ({type(err).__name__}: {err})") from err
    if str(ds.PhotometricInterpretation).strip() == "PALETTE COLOR":
        try:
            array = apply_color_lut(array, ds)
        except Exception as err:
            raise InputError(path, f"PALETTE COLOR image without a usable lookup table ({err})") from err
    if array.ndim != 3 or array.shape[-1] != 3:
        raise InputError(path, f"decoded DICOM pixels have shape {array.shape}; expected rows x columns x 3")
    if array.dtype != np.uint8:
        bits = int(ds.get("BitsStored", 16)) if "PALETTE" not in str(ds.PhotometricInterpretation) else 16
        scale = 255.0 / (2**bits - 1)
        array = np.round(array.astype(np.float64) * scale).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def read_dicom(path: str | Path) -> SourceImage:
    """Read a single-frame colour DICOM image, its pixel spacing and its dataset.

    Raises:
        InputError: not DICOM, no pixel data, multi-frame, monochrome, truncated or undecodable.
    """
    path = Path(path)
    import pydicom  # here, not at the top: most inputs are not DICOM
    try:
        if path.stat().st_size == 0:
            raise InputError(path, "empty file (0 bytes)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # pydicom warns, rather than fails, when the file ends early
            ds = pydicom.dcmread(path)
    except InputError:
        raise
    except UNOPENABLE as err:
        raise unopenable(path, err) from err
    except pydicom.errors.InvalidDicomError as err:
        raise InputError(path, f"not a readable DICOM file ({err})") from err
    except Exception as err:  # the parser meets hostile or cut-off bytes in many ways
        raise InputError(path, f"corrupt or truncated DICOM file ({type(err).__name__}: {err})") from err
    with warnings.catch_warnings():
        # pydicom warns about odd values on its way; what stops the file is said in one line by an InputError.
        warnings.simplefilter("ignore")
        _check_image(path, ds, _cut_off(ds, any("End of file" in str(warning.message) for warning in caught)))
        pixels = _decode(path, ds)
    spacing, source = pixel_spacing(ds)
    del ds.PixelData  # the SEG needs the attributes, not the pixels; keeps a batch's memory flat
    return SourceImage(pixels, spacing, source, ds)
