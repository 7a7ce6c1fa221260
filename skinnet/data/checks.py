"""What every reader of an input file refuses, in the same words: the size limits, files that cannot be
opened, and :class:`InputError`, which names the file and says what is wrong, so a batch can report it and
go on. Pillow (:mod:`skinnet.data.io`) and pydicom (:mod:`skinnet.data.dicom`) readers share it.
"""

from __future__ import annotations

from pathlib import Path

# Larger images are refused before decoding: 100 megapixels is far above any dermoscope
# (the ISIC 2017 originals reach 30 MP) and keeps a decompression bomb from exhausting memory.
MAX_PIXELS = 100_000_000
# Rows converted to RGB at a time (Pillow images and DICOM pixel data): the RGB copy of a strip stays small
# even for the largest legal image.
STRIP_ROWS = 512
# The area alone does not bound the cost: a 2 x 49,000,000 strip is legal by area, yet every step after
# decoding (resizing, padding, outlines) works per row or per column. Dermoscopes give about 4:3 frames.
MAX_SIDE = 16_384
MAX_ASPECT = 8
# OS errors that keep a file from being opened at all, and what every reader says about them.
UNOPENABLE = (FileNotFoundError, IsADirectoryError, PermissionError)


def one_line(err: BaseException, limit: int = 160) -> str:
    """An exception's message as one short line, for a reason that names what a decoder or library said
    (their messages can span lines and be long): whitespace collapsed, cut to ``limit`` characters."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class InputError(ValueError):
    """A file that cannot be used, with the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def check_size(path: str | Path, width: int, height: int) -> None:
    """Refuse, before decoding, an image whose area, longest side or aspect ratio is over the limits.

    Raises:
        InputError: naming the size and the limit it breaks.
    """
    if width * height > MAX_PIXELS:
        raise InputError(path, f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,} "
                               "(refused as a possible decompression bomb)")
    if max(width, height) > MAX_SIDE:
        raise InputError(path, f"image of {width}x{height} pixels: a side is longer than the limit of "
                               f"{MAX_SIDE:,} pixels")
    if max(width, height) > MAX_ASPECT * max(min(width, height), 1):
        raise InputError(path, f"image of {width}x{height} pixels: more than {MAX_ASPECT} times as long as it "
                               "is wide (not a photograph of a lesion)")


def unopenable(path: str | Path, err: OSError) -> InputError:
    """The one-line error for one of :data:`UNOPENABLE` met opening ``path``."""
    if isinstance(err, FileNotFoundError):
        return InputError(path, "no such file")
    if isinstance(err, IsADirectoryError):
        return InputError(path, "is a directory, not an image")
    return InputError(path, "permission denied")
