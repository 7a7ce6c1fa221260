"""Reading images and masks safely, and writing outputs atomically.

Every failure is an :class:`InputError` whose message names the file and says what is wrong, so a
batch can report it and go on.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Larger images are refused before decoding: 100 megapixels is far above any dermoscope
# (the ISIC 2017 originals reach 30 MP) and keeps a decompression bomb from exhausting memory.
MAX_PIXELS = 100_000_000


class InputError(ValueError):
    """A file that cannot be used, with the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise InputError(path, "empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise InputError(path, f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,}")
        image.load()
        return image
    except InputError:
        raise
    except FileNotFoundError as err:
        raise InputError(path, "no such file") from err
    except IsADirectoryError as err:
        raise InputError(path, "is a directory, not an image") from err
    except UnidentifiedImageError as err:
        raise InputError(path, "not a readable image (unknown or corrupt format)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(path, f"refused as a decompression bomb ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(path, f"corrupt or truncated image ({err})") from err


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB ``uint8 (H, W, 3)`` in its displayed orientation (EXIF applied).

    Grayscale is replicated to three channels, alpha is dropped (composited on black), palette and CMYK
    images are converted, 16-bit images are scaled to 8 bits.
    """
    image = _open(path)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as err:  # a malformed EXIF block must not hide an otherwise good image
        warnings.warn(f"{path}: EXIF orientation ignored ({err})", stacklevel=2)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        array = array / (65535.0 if array.max() > 255 else 255.0) * 255.0
        return np.repeat(np.round(array).astype(np.uint8)[..., None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def read_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth or predicted mask as boolean ``(H, W)``, binarised at ``> 128`` like the scorer.

    Raises:
        InputError: unreadable, or a 0/1 mask (which ``> 128`` would score as empty).
    """
    image = _open(path)
    if image.mode == "1":
        image = image.convert("L")
    if image.mode in ("RGB", "RGBA"):
        array = np.asarray(image)[..., :3]
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise InputError(path, "mask has colour (RGB) content; expected a single-channel 0/255 mask")
        array = array[..., 0]
    elif image.mode in ("L", "P"):
        array = np.asarray(image.convert("L") if image.mode == "P" else image)
    else:
        raise InputError(path, f"mask mode {image.mode!r} not supported; expected a single-channel 8-bit PNG")
    values = np.unique(array)
    if values.max(initial=0) == 1:
        raise InputError(path, "mask values are 0/1; expected 0/255 (multiply by 255 before saving)")
    if not set(values.tolist()) <= {0, 255}:
        warnings.warn(f"{path}: mask has values other than 0/255; binarised at > 128", stacklevel=2)
    return array > 128


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 grayscale or RGB array as PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean mask as a single-channel 0/255 PNG atomically."""
    write_png(path, np.where(mask, 255, 0).astype(np.uint8))
