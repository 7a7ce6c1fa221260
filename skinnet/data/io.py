"""Reading images and masks safely, and writing outputs atomically.

Every failure is an :class:`InputError` whose message names the file and says what is wrong, so a
batch can report it and go on.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


def _file_mode() -> int:
    """Permissions of a newly created file under the umask (``mkstemp`` alone gives 0600)."""
    umask = os.umask(0o022)  # the only way to read it is to set it
    os.umask(umask)
    return 0o666 & ~umask


# Read once: setting the umask to read it is not safe while other threads create files.
FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    A crash or a kill at any moment leaves either the old file or the complete new one under ``path``.

    Raises:
        OSError: the folder cannot be created or written (e.g. a full disk); the message names ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OSError(err.errno, f"cannot create a file here ({err.strerror})", str(path)) from err
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        yield Path(tmp)
        fsync_file(tmp)  # the content on disk before the name: a power loss never leaves a 0-byte file under it
        os.replace(tmp, path)
        fsync_dir(path.parent)  # and the rename itself
    except OSError as err:
        if err.filename not in (None, tmp):
            raise
        # Name the file the user asked for, not the hidden temporary one.
        raise OSError(err.errno, err.strerror, str(path)) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fsync_file(path: str | Path) -> None:
    """Flush a closed file's content to the disk (``os.fsync``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Flush a folder's entries (a created, renamed or deleted name) to the disk; a file system that cannot
    sync a folder (some network and FUSE mounts) is let be."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EISDIR):
            raise
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries of :func:`atomic_path` that a killed process left in ``folder``; returns them."""
    stale = [path for path in Path(folder).glob(".*.tmp") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically, in UTF-8 whatever the locale."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a binary file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN float, however deeply nested in dicts and lists, replaced by ``None``.

    JSON has no NaN: an undefined statistic (the sd of a single fold, a test without differences) is null.
    """
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(inner) for inner in value]
    return value


def write_json(path: str | Path, value: Any) -> None:
    """Write ``value`` as strict JSON (NaN as null, see :func:`json_safe`), indented, atomically."""
    write_text(path, json.dumps(json_safe(value), indent=1, allow_nan=False))


# Cells a spreadsheet would run as a formula (OWASP, "CSV Injection"): =, +, - and @, and tab and carriage
# return, which some spreadsheets strip before looking. The quote is also escaped itself, so that
# :func:`read_csv` gives back exactly what was written.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.IGNORECASE)


def spreadsheet_safe(value: Any) -> Any:
    """A table cell as written: a text starting with one of :data:`FORMULA_STARTS` gets a leading ``'``
    (OWASP's neutralisation: shown, never run); numbers, and texts that are numbers (``-0.5``), stay as they
    are."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def restored(text: str) -> str:
    """A cell of a table :func:`write_csv` wrote, as it was before :func:`spreadsheet_safe`."""
    return text[1:] if text.startswith("'") else text


class _RowLines:
    """The file-like that ``csv.writer`` writes into: the writer runs with ``\r\n`` line ends, so that it
    quotes every cell holding a ``\r`` as well as a ``\n``; each row then ends in ``\n`` alone."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line[:-2] + "\n" if line.endswith("\r\n") else line)


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Write dict rows as CSV with a header, atomically: the one writer of every table skinnet writes.

    The file is UTF-8 whatever the locale (a file name the file system gave as undecodable bytes is written
    back as those bytes); a cell holding a line break is quoted (``\r`` too, which the ``csv`` module leaves
    bare); a cell a spreadsheet would run as a formula is neutralised (see :func:`spreadsheet_safe`).
    :func:`read_csv` reads such a table back.
    """
    lines = _RowLines()
    writer = csv.DictWriter(lines, fieldnames=list(fieldnames), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as handle:
        handle.writelines(lines.lines)


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and the rows of a table :func:`write_csv` wrote, every cell as it was given to it.

    Raises:
        InputError: the file is missing, empty or no CSV table (no header, a NUL byte, a cell over the
            ``csv`` module's size limit).
    """
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [{key: restored(value) if isinstance(value, str) else value
                     for key, value in row.items() if key is not None} for row in reader]
    except UNOPENABLE as err:
        raise unopenable(path, err) from err
    except csv.Error as err:
        raise InputError(path, f"not a CSV table ({err})") from err
    if not columns:
        raise InputError(path, "empty file (0 bytes)" if Path(path).stat().st_size == 0 else
                               "not a CSV table (no header line)")
    return columns, rows


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 grayscale or RGB array as PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean mask as a single-channel 0/255 PNG atomically."""
    # uint8 throughout: np.where(mask, 255, 0) would build an int64 copy, 8 bytes a pixel.
    write_png(path, np.where(mask, np.uint8(255), np.uint8(0)))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
