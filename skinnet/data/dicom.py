"""Reading single-frame colour DICOM images (dermoscopic and other visible-light photographs) with pydicom.

A DICOM file is recognised by its ``DICM`` marker (byte 128), whatever its name
(:func:`skinnet.data.formats.is_dicom`; :func:`skinnet.data.io.read_source` sends it here). What is read:

* single-frame images only: a multi-frame file is refused rather than silently reduced to its first frame;
* colour only: ``RGB``, ``YBR_FULL``, ``YBR_FULL_422`` (converted to RGB), ``YBR_ICT`` and ``YBR_RCT``
  (JPEG 2000; the decoder converts), ``PALETTE COLOR`` (through its lookup table); ``MONOCHROME1/2`` is
  refused, since the model needs colour;
* 8-bit samples as they are; 16 bits are scaled to 8 like 16-bit PNGs (:func:`skinnet.data.io.read_image`);
* native (uncompressed) pixel data and the compressed transfer syntaxes that pydicom's installed decoders
  handle: JPEG baseline and extended (Pillow, pylibjpeg-libjpeg), JPEG lossless (pylibjpeg-libjpeg),
  JPEG-LS (pyjpegls, pylibjpeg-libjpeg), JPEG 2000 (Pillow), RLE lossless (pydicom itself), deflate;
  a JPEG-family frame must end with its end-of-image marker, as a plain ``.jpg`` must;
* the pixel spacing, for measurements in millimetres: ``PixelSpacing`` (0028,0030), else
  ``ImagerPixelSpacing`` (0018,1164), else the Pixel Measures of the shared functional groups; in mm,
  ``(row, column)`` (the distance between the centres of adjacent rows, then of adjacent columns), within
  the bounds of :mod:`skinnet.data.spacing`.

Memory is bounded before pydicom sees the bytes, whatever the file holds (docs/security.md): the parsing
within limits is :mod:`skinnet.data.dicom_parse`; here, the decoded samples are at most :data:`MAX_PIXEL_BYTES`
(100 megapixels at 8 bits, 50 at 16), the size check of other images (:func:`~skinnet.data.checks.check_size`)
applies, and the conversion to RGB ``uint8`` goes strip by strip (pydicom's own YCbCr conversion takes 12 bytes
a pixel of float32).

Every problem is an :class:`~skinnet.data.checks.InputError` naming the file in one line, whatever pydicom or a
decoder raised, so a batch reports it and goes on. pydicom is imported only when a DICOM file is met.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.data.checks import STRIP_ROWS, UNOPENABLE, InputError, check_size, one_line, unopenable
from skinnet.data.dicom_parse import MAX_PIXEL_BYTES, MAX_READS, TooManyReads, drop_deferred, parse_dataset
from skinnet.data.spacing import SPACING_RANGE, spacing_in_range

COLOUR_INTERPRETATIONS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
# The JPEG-family transfer syntaxes, whose frames end with the FFD9 marker: JPEG baseline, extended, lossless
# (process 14 and SV1), JPEG-LS lossless and near-lossless, JPEG 2000 (lossless and lossy) and HTJ2K.
JPEG_FAMILY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
               "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
               "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
               "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
# Decoders that hold up to 20 bytes a pixel while decoding (openjpeg through Pillow for JPEG 2000, CharLS and
# libjpeg for JPEG-LS and lossless JPEG; measured, benchmarks/dicom_memory.py) get fewer pixels than
# MAX_PIXELS, so that reading stays within 1.5 GB.
HUNGRY_DECODER_PIXELS = 60_000_000
HUNGRY_DECODERS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
                   "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
                   "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}


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


def _pydicom(path: Path) -> Any:
    try:
        import pydicom
    except ImportError as err:  # pragma: no cover - pydicom is in requirements.txt
        raise InputError(path, "a DICOM file, and reading DICOM needs pydicom (pip install -r "
                               "requirements.txt)") from err
    return pydicom


def pixel_spacing(dataset: Any, path: str | Path | None = None) -> tuple[tuple[float, float] | None, str | None]:
    """``((row, column) mm, attribute name)`` of a dataset's pixel spacing, or ``(None, None)``.

    Values that are not two numbers within :data:`~skinnet.data.spacing.SPACING_RANGE` (the bounds a user's
    ``--pixel-spacing`` has) are ignored (treated as absent), with a warning: a file's 1e308 mm must not give
    an infinite area.
    """
    candidates = [("PixelSpacing", dataset.get("PixelSpacing")),
                  ("ImagerPixelSpacing", dataset.get("ImagerPixelSpacing"))]
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared and "PixelMeasuresSequence" in shared[0] and shared[0].PixelMeasuresSequence:
        measures = shared[0].PixelMeasuresSequence[0]
        candidates.append(("PixelMeasuresSequence.PixelSpacing", measures.get("PixelSpacing")))
    for name, value in candidates:
        if value is None:
            continue
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if spacing_in_range(row) and spacing_in_range(column):
            return (row, column), name
        warnings.warn(f"{path or 'DICOM file'}: {name} {row:g}\\{column:g} mm is "
                      f"outside {SPACING_RANGE}; ignored (lengths in pixels only)", stacklevel=2)
    return None, None


def _sop_class(ds: Any) -> str:
    """The SOP class's name (e.g. "VL Photographic Image Storage"), or ``""`` where the file gives none."""
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    return str(getattr(uid, "name", uid or ""))


def _integer(path: Path, ds: Any, keyword: str, default: int | None = None) -> int:
    """An Image Pixel attribute as an ``int``; one line naming it where it is absent or not a number."""
    from pydicom.datadict import tag_for_keyword

    tag = f"({tag_for_keyword(keyword) >> 16:04X},{tag_for_keyword(keyword) & 0xFFFF:04X})"
    if keyword not in ds or ds.get_item(keyword, keep_deferred=True).value in (None, b"", ""):
        if default is not None:
            return default
        raise InputError(path, f"DICOM image without {keyword} {tag}: its pixels cannot be decoded")
    try:
        value = ds[keyword].value
        number = int(value)
        if number != value:
            raise ValueError
    except Exception as err:  # pydicom converts the raw bytes on access: "abc", "1\\2", 3.5
        raw = ds.get_item(keyword, keep_deferred=True).value
        shown = raw.decode("latin-1").strip() if isinstance(raw, bytes) else str(raw)
        raise InputError(path, f"DICOM {keyword} {tag} is {shown[:40]!r}, not a whole number") from err
    return number


def _check_image(path: Path, ds: Any) -> None:
    """Refuse what this reader does not handle, before any decoding (every check reads only the header).

    Args:
        path: the file, for the messages.
        ds: its dataset.
    """
    if "PixelData" not in ds:
        other = next((k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds), None)
        sop_class = _sop_class(ds)
        if other:
            raise InputError(path, f"DICOM file has {other} (a parametric map), not an image")
        hint = "; the file may be incomplete" if "Image" in sop_class else ", not an image"
        raise InputError(path, f"DICOM file has no pixel data ({sop_class or 'no SOP class'}{hint})")
    frames = _integer(path, ds, "NumberOfFrames", default=1)
    if frames > 1:
        raise InputError(path, f"multi-frame DICOM ({frames} frames): only single-frame images are read; "
                               "extract the frame to segment into its own file")
    interpretation = str(ds.get("PhotometricInterpretation", "")).strip()
    if interpretation not in COLOUR_INTERPRETATIONS:
        raise InputError(path, f"{interpretation[:40] or 'unknown'} DICOM image: a colour image is needed "
                               f"({', '.join(COLOUR_INTERPRETATIONS)})")
    rows, columns = _integer(path, ds, "Rows"), _integer(path, ds, "Columns")
    if rows < 1 or columns < 1:
        raise InputError(path, f"DICOM image of {columns}x{rows} pixels")
    check_size(path, columns, rows)
    syntax = ds.file_meta.TransferSyntaxUID
    if str(syntax) in HUNGRY_DECODERS and rows * columns > HUNGRY_DECODER_PIXELS:
        raise InputError(path, f"{syntax.name} DICOM image of {columns}x{rows} pixels exceeds the limit of "
                               f"{HUNGRY_DECODER_PIXELS:,} for this transfer syntax (its decoder needs up to 20 "
                               "bytes a pixel)")
    samples = _integer(path, ds, "SamplesPerPixel")
    expected_samples = 1 if interpretation == "PALETTE COLOR" else 3
    if samples != expected_samples:
        raise InputError(path, f"DICOM {interpretation} image with {samples} samples per pixel; expected "
                               f"{expected_samples}")
    bits = _integer(path, ds, "BitsAllocated")
    if bits not in (8, 16):
        raise InputError(path, f"DICOM image of {bits} bits allocated per sample: 8 or 16 are read")
    stored = _integer(path, ds, "BitsStored")
    if not 1 <= stored <= bits:
        raise InputError(path, f"DICOM image with {stored} bits stored of {bits} allocated")
    decoded = rows * columns * samples * bits // 8
    if decoded > MAX_PIXEL_BYTES:
        raise InputError(path, f"DICOM image of {columns}x{rows} pixels at {bits} bits would decode to "
                               f"{decoded:,} bytes, more than the limit of {MAX_PIXEL_BYTES:,}")


def _check_frame(path: Path, ds: Any, syntax: Any) -> None:
    """A JPEG-family frame must be whole, as :func:`~skinnet.data.io.read_image` wants a plain ``.jpg``.

    Decoders fill a frame cut short with a flat colour and say nothing (pylibjpeg) or only warn; a frame that
    does not end with its end-of-image marker (FFD9; JPEG 2000's end of codestream has the same code) is cut.
    """
    from pydicom.encaps import generate_frames

    if str(syntax) not in JPEG_FAMILY:
        return
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    except Exception as err:  # fragments of the wrong length or no items at all
        raise InputError(path, f"corrupt encapsulated DICOM pixel data ({type(err).__name__}: "
                               f"{one_line(err)})") from err
    head, tail = frame[:4], frame[-32:].rstrip(b"\0")  # fragments are padded to an even length
    if not (head.startswith(b"\xff\xd8") or head.startswith(b"\xff\x4f\xff\x51") or head == b"\0\0\0\x0c"):
        raise InputError(path, f"corrupt DICOM pixel data: the {syntax.name} frame does not start with a JPEG "
                               "or JPEG 2000 marker")
    if not tail.endswith(b"\xff\xd9"):
        raise InputError(path, f"truncated DICOM pixel data: the {syntax.name} frame ends without its "
                               "end-of-image marker (FFD9), so part of the image is missing")


def _decode(path: Path, ds: Any) -> np.ndarray:
    """The first (only) frame as RGB ``uint8``, converted strip by strip (see the module docstring)."""
    from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder
    from pydicom.pixels.utils import get_expected_length

    syntax = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) if decoder else "no decoder exists in pydicom"
        raise InputError(path, f"cannot decode the transfer syntax {syntax.name} ({missing})")
    if syntax.is_compressed:
        _check_frame(path, ds, syntax)
    else:  # native pixel data: a short value means the file was cut
        if int(ds.SamplesPerPixel) > 1 and _integer(path, ds, "PlanarConfiguration") not in (0, 1):
            raise InputError(path, f"DICOM PlanarConfiguration {ds.PlanarConfiguration}: 0 or 1 is read")
        expected = get_expected_length(ds)  # 2 bytes a pixel for YBR_FULL_422
        if len(ds.PixelData) < expected:
            raise InputError(path, f"truncated DICOM file: {len(ds.PixelData):,} of {expected:,} bytes of pixels")
    try:
        # raw: no colour conversion here (pydicom's converts the whole image in float32, 12 bytes a pixel)
        array, properties = decoder.as_array(ds, index=0, raw=True, view_only=True)
    except Exception as err:  # decoders fail in many ways on short or damaged data
        raise InputError(path, f"corrupt or truncated DICOM pixel data ({type(err).__name__}: "
                               f"{one_line(err)})") from err
    interpretation = str(properties.get("photometric_interpretation", ds.PhotometricInterpretation)).strip()
    palette = interpretation == "PALETTE COLOR"
    rows, columns = int(ds.Rows), int(ds.Columns)
    if array.shape[:2] != (rows, columns) or array.ndim != (2 if palette else 3):
        raise InputError(path, f"decoded DICOM pixels have shape {array.shape}; expected {rows} x {columns}"
                               f"{'' if palette else ' x 3'}")
    bits = 16 if palette else int(ds.BitsStored)  # palette lookup tables give 16-bit values
    # A decoder's own uint8 array is converted in place; a view of the file's bytes (native data) is copied.
    in_place = array.dtype == np.uint8 and array.ndim == 3 and array.flags.writeable and array.flags.c_contiguous
    rgb = array if in_place else np.empty((rows, columns, 3), np.uint8)
    for top in range(0, rows, STRIP_ROWS):
        strip = array[top : top + STRIP_ROWS]
        if palette:
            try:
                strip = apply_color_lut(strip, ds)
            except Exception as err:
                raise InputError(path, f"PALETTE COLOR image without a usable lookup table "
                                       f"({one_line(err)})") from err
        if strip.dtype != np.uint8:
            scale = np.float32(255.0 / (2**bits - 1))
            strip = np.round(strip.astype(np.float32) * scale).clip(0, 255).astype(np.uint8)
        if interpretation in ("YBR_FULL", "YBR_FULL_422"):
            strip = convert_color_space(strip, "YBR_FULL", "RGB")
        rgb[top : top + STRIP_ROWS] = strip
    return rgb


def read_dicom(path: str | Path) -> SourceImage:
    """Read a single-frame colour DICOM image, its pixel spacing and its dataset.

    Every problem of the file, whatever the parser or the decoder raises, is one :class:`InputError` naming it.

    Raises:
        InputError: not DICOM, over a limit, no pixel data, multi-frame, monochrome, truncated, missing or
            malformed attributes, or undecodable.
    """
    path = Path(path)
    _pydicom(path)
    try:
        with open(str(path), "rb") as handle:  # a str name: pydicom reopens it for deferred values
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise InputError(path, "empty file (0 bytes)")
            ds = parse_dataset(path, handle, size)
            with warnings.catch_warnings():
                # pydicom warns about odd values on its way; what stops the file is said in one line.
                warnings.simplefilter("ignore")
                _check_image(path, ds)
                pixels = _decode(path, ds)
        spacing, source = pixel_spacing(ds, path)
    except InputError:
        raise
    except UNOPENABLE as err:
        raise unopenable(path, err) from err
    except TooManyReads as err:
        raise InputError(path, f"DICOM file with more than {MAX_READS:,} elements, items and fragments "
                               "(refused: no image needs that many)") from err
    except Exception as err:  # the parser and the decoders meet hostile or cut-off bytes in many ways
        raise InputError(path, f"corrupt or malformed DICOM file ({type(err).__name__}: "
                               f"{one_line(err)})") from err
    del ds.PixelData  # the SEG needs the attributes, not the pixels; keeps a batch's memory flat
    drop_deferred(ds)
    return SourceImage(pixels, spacing, source, ds)
