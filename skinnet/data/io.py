"""Reading images and masks safely (writing them: :mod:`skinnet.data.atomic`; tables: :mod:`skinnet.data.tables`).

Every failure is an :class:`InputError` whose message names the file and says what is wrong, so a
batch can report it and go on.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinnet.data.checks import MAX_PIXELS, STRIP_ROWS, UNOPENABLE, InputError, check_size, unopenable
from skinnet.data.dicom import SourceImage, read_dicom
from skinnet.data.formats import PILLOW_FORMATS, is_dicom, refused_reason

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def _open(path: str | Path, draft: tuple[int, int] | None = None) -> Image.Image:
    """The decoded image; ``draft``: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
    it at least that ``(width, height)``, its full size kept in ``info["full_size"]``."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise InputError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            # PIL warns from 89 megapixels on; MAX_PIXELS below is the limit that applies here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=PILLOW_FORMATS)
        try:
            check_size(path, *image.size)
        except InputError:
            image.close()
            raise
        if draft is not None and image.format == "JPEG":
            image.info["full_size"] = image.size
            image.draft("RGB", draft)
        image.load()
        return image
    except InputError:
        raise
    except UNOPENABLE as err:
        raise unopenable(path, err) from err
    except UnidentifiedImageError as err:
        raise InputError(path, refused_reason(path)) from err
    except Image.DecompressionBombError as err:
        raise InputError(path, f"image declares more than {MAX_PIXELS:,} pixels "
                               "(refused as a possible decompression bomb)") from err
    except Exception as err:  # decoders fail on hostile bytes in many types (OSError, SyntaxError, ...)
        raise InputError(path, f"corrupt or truncated image ({type(err).__name__}: {err})") from err


def declared_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of an image in an accepted format, decoding no pixels; ``None``
    for anything else (DICOM, or bytes :func:`read_image` will refuse with its reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as image:
                return image.size
    except Exception:  # the header is unreadable: the worker's read says why
        return None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB ``uint8 (H, W, 3)`` in its displayed orientation (EXIF applied).

    Grayscale is replicated to three channels, alpha is dropped (composited on black), palette and CMYK
    images are converted, 16-bit images are scaled to 8 bits. Peak memory is the decoded image plus the
    returned array: conversion goes strip by strip.

    DICOM files (recognised by content, see :mod:`skinnet.data.dicom`) are read with pydicom: single-frame
    colour images only.

    Raises:
        InputError: the file is missing, empty, not an image, corrupt, truncated or too large.
    """
    return read_source(path).pixels


def read_source(path: str | Path) -> SourceImage:
    """Any input image: DICOM (by content) with its spacing and dataset, else Pillow's RGB (see
    :func:`read_image`). The one place a file goes to pydicom or to Pillow.

    Raises:
        InputError: the file cannot be used; the message names it and says why.
    """
    if is_dicom(path):
        return read_dicom(path)
    return SourceImage(_read_picture(path), None, None)


def read_dicom_only(path: str | Path) -> SourceImage:
    """:func:`skinnet.data.dicom.read_dicom`, refusing other formats with a one-line reason (for DICOM-only
    outputs)."""
    if not is_dicom(path):
        raise InputError(path, "not a DICOM file (no DICM marker): a DICOM Segmentation (--dicom-seg) can only "
                               "reference a DICOM image")
    return read_dicom(path)


class DraftImage(np.ndarray):
    """RGB pixels of a JPEG decoded at reduced size, with ``full_shape``: ``(height, width)`` of the image at
    full size (in its displayed orientation), the size its mask gets."""

    full_shape: tuple[int, int] | None = None


def read_image_draft(path: str | Path, side: int) -> np.ndarray:
    """:func:`read_image`, but a JPEG is decoded only as large as a network input of ``side`` pixels needs:
    at the smallest DCT scale (Pillow ``Image.draft``: 1/2, 1/4 or 1/8) keeping both sides at least
    ``side``, several times less decoding work for large photographs. The result is a :class:`DraftImage`
    that knows the full size; other formats and small JPEGs are read in full.

    Raises:
        InputError: as :func:`read_image`.
    """
    if is_dicom(path):
        return read_dicom(path).pixels
    image = _open(path, draft=(side, side))
    full_size = image.info.get("full_size")
    rgb, swapped = _rgb(image, path)
    if full_size is None or full_size == image.size[::-1 if swapped else 1]:
        return rgb
    drafted = rgb.view(DraftImage)
    width, height = full_size
    drafted.full_shape = (width, height) if swapped else (height, width)
    return drafted


class DraftReader:
    """A batch run's reader (:func:`skinnet.batch.run.predict_files`) that decodes JPEGs as drafts
    (:func:`read_image_draft`) for a network input of ``side`` pixels; its :meth:`identity` goes into the run's
    manifest, since the masks differ a little from those of fully decoded images."""

    def __init__(self, side: int) -> None:
        self.side = side

    def __call__(self, path: str | Path) -> np.ndarray:
        return read_image_draft(path, self.side)

    def identity(self) -> dict[str, Any]:
        return {"decode": "jpeg_draft", "side": self.side}


def _read_picture(path: str | Path) -> np.ndarray:
    """A Pillow-decoded image as RGB ``uint8`` in its displayed orientation (see :func:`read_image`)."""
    return _rgb(_open(path), path)[0]


def _rgb(image: Image.Image, path: str | Path) -> tuple[np.ndarray, bool]:
    """An opened image as RGB uint8 in its displayed orientation, and whether EXIF turned it by 90 degrees."""
    swapped = False
    try:
        turns = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # the orientations that turn by 90 degrees
        ImageOps.exif_transpose(image, in_place=True)
        swapped = turns
    except Exception as err:  # a malformed EXIF block must not hide an otherwise good image
        warnings.warn(f"{path}: EXIF orientation ignored ({err})", stacklevel=3)
    width, height = image.size
    scale = None
    if image.mode in SIXTEEN_BIT_MODES:  # one scale for the whole image, not per strip
        scale = 255.0 / (65535.0 if image.getextrema()[1] > 255 else 255.0)
    rgb = np.empty((height, width, 3), np.uint8)
    try:
        for top in range(0, height, STRIP_ROWS):
            strip = image.crop((0, top, width, min(top + STRIP_ROWS, height)))
            rgb[top:top + STRIP_ROWS] = _rgb_strip(strip, scale)
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot convert {image.mode} image to RGB ({err})") from err
    return rgb, swapped


def _rgb_strip(strip: Image.Image, scale: float | None) -> np.ndarray:
    """A strip of any mode as RGB uint8; ``scale`` maps 16-bit values to 0-255."""
    if scale is not None:
        gray = np.round(np.asarray(strip, dtype=np.float64) * scale).clip(0, 255).astype(np.uint8)
        return gray[..., None]
    if strip.mode in ("RGBA", "LA", "PA") or (strip.mode == "P" and "transparency" in strip.info):
        strip = strip.convert("RGBA")
        strip = Image.alpha_composite(Image.new("RGBA", strip.size, (0, 0, 0, 255)), strip)
    return np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth or predicted mask as boolean ``(H, W)``, binarised at ``> 128`` like the scorer.

    Gray levels other than 0 and 255 are binarised with a warning; a grayscale mask saved as RGB is accepted.

    Raises:
        InputError: unreadable, coloured, or a 0/1 mask (which ``> 128`` would score as empty).
    """
    image = _open(path)
    if image.mode in ("1", "P"):
        image = image.convert("L")
    if image.mode in ("RGB", "RGBA"):
        array = np.asarray(image)[..., :3]
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise InputError(path, "mask has colour (RGB) content; expected a single-channel 0/255 mask")
        array = array[..., 0]
    elif image.mode == "LA":
        array = np.asarray(image)[..., 0]
    elif image.mode == "L":
        array = np.asarray(image)
    else:
        raise InputError(path, f"mask mode {image.mode!r} not supported; expected a single-channel 8-bit "
                               "0/255 PNG")
    values = np.unique(array)
    if values.max(initial=0) == 1:
        raise InputError(path, "mask values are 0/1; expected 0/255 (multiply by 255 before saving)")
    others = values[(values != 0) & (values != 255)]
    if len(others):
        warnings.warn(f"{path}: mask has {len(others)} gray level(s) besides 0/255 (e.g. {others[0]}); "
                      "binarised at > 128 like the official scorer", stacklevel=2)
    return array > 128
