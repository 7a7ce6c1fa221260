"""The image formats skinnet reads, in one table: the file suffixes, Pillow's decoders, DICOM's marker and
the list users are shown all come from :data:`FORMATS`.

Pillow picks a decoder from a file's content, whatever its name: it is given only the formats of this table
(:data:`PILLOW_FORMATS`), so that a PostScript file called lesion.jpg is never handed to Ghostscript. DICOM
is recognised by its own marker (:func:`is_dicom`) and read with pydicom (:mod:`skinnet.data.dicom`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageFormat:
    """One accepted input format.

    Attributes:
        name: as users read it, e.g. "WebP".
        suffixes: the file names a folder search takes as images of this format (lower case).
        pillow: the Pillow format that decodes it; ``None`` for DICOM (pydicom reads it).
    """

    name: str
    suffixes: tuple[str, ...]
    pillow: str | None


FORMATS = (
    ImageFormat("JPEG", (".jpg", ".jpeg"), "JPEG"),
    ImageFormat("PNG", (".png",), "PNG"),
    ImageFormat("TIFF", (".tif", ".tiff"), "TIFF"),
    ImageFormat("BMP", (".bmp",), "BMP"),
    ImageFormat("WebP", (".webp",), "WEBP"),
    ImageFormat("DICOM", (".dcm", ".dicom"), None),
)
IMAGE_SUFFIXES = frozenset(suffix for image_format in FORMATS for suffix in image_format.suffixes)
# The only decoders that ever see a file's bytes.
PILLOW_FORMATS = tuple(image_format.pillow for image_format in FORMATS if image_format.pillow)
# "JPEG, PNG, TIFF, BMP, WebP or DICOM": what error messages and the web API's docs list.
ACCEPTED = ", ".join(image_format.name for image_format in FORMATS[:-1]) + f" or {FORMATS[-1].name}"

# A DICOM Part 10 file: a 128-byte preamble, then this marker.
DICOM_MARKER_OFFSET = 128
DICOM_MARKER = b"DICM"
# Formats recognised by their first bytes only to say what a refused file is; none of them is ever decoded.
REFUSED_SIGNATURES = ((b"%!PS", "PostScript"), (b"\xc5\xd0\xd3\xc6", "PostScript (EPS)"), (b"%PDF", "PDF"),
                      (b"GIF8", "GIF"), (b"<?xml", "XML or SVG"), (b"<svg", "SVG"), (b"\x00\x00\x01\x00", "ICO"),
                      (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"),
                      (b"8BPS", "Photoshop (PSD)"), (b"#?RADIANCE", "Radiance HDR"), (b"icns", "Apple icon"))


def _head(path: str | Path, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def is_dicom(path: str | Path) -> bool:
    """Whether the file starts like a DICOM Part 10 file (128-byte preamble, then ``DICM``), whatever its name."""
    end = DICOM_MARKER_OFFSET + len(DICOM_MARKER)
    head = _head(path, end)
    return len(head) == end and head[DICOM_MARKER_OFFSET:] == DICOM_MARKER


def refused_reason(path: str | Path) -> str:
    """Why a file is not an image skinnet reads: what its first bytes say it is, if we know."""
    head = _head(path, 16)
    known = next((name for signature, name in REFUSED_SIGNATURES if head.startswith(signature)), None)
    if known:
        return f"not a readable image: the file is {known}, not one of the accepted formats ({ACCEPTED})"
    return f"not a readable image (not {ACCEPTED}, or a corrupt file)"
