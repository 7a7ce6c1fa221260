"""Writing files atomically (a crash leaves the old file or the whole new one), and hashing them."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


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
