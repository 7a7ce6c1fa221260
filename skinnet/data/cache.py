"""A one-time cache of the pairs resized to the training size, so epochs never re-decode large JPEGs."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from skinnet.data.atomic import atomic_path
from skinnet.data.io import InputError, read_image, read_mask
from skinnet.data.layout import LayoutError, Pair

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$SKINNET_CACHE`` or ``~/.cache/skinnet``: data folders may be read-only."""
    return Path(os.environ.get("SKINNET_CACHE", Path.home() / ".cache" / "skinnet"))


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an RGB uint8 image to ``size x size`` (area interpolation when shrinking)."""
    shrinking = image.shape[0] > size or image.shape[1] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a boolean mask to ``size x size``: area-average, then keep pixels at least half lesion."""
    resized = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return resized >= 0.5


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """The RGB image and boolean mask of a pair, checked to be the same size.

    Raises:
        InputError: either file is unreadable, or the sizes differ.
    """
    image, mask = read_image(pair.image), read_mask(pair.mask)
    if image.shape[:2] != mask.shape:
        hint = ""
        if image.shape[1::-1] == mask.shape:
            hint = " (width and height swapped: masks must be in the displayed, EXIF-rotated orientation)"
        raise InputError(pair.mask, f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                    f"{image.shape[1]}x{image.shape[0]}{hint}")
    return image, mask


@dataclass
class CachedPairs:
    """Resized images ``(N, S, S, 3) uint8`` and masks ``(N, S, S) bool``, in the order of ``ids``."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray

    def subset(self, ids: list[str]) -> CachedPairs:
        index = {key: i for i, key in enumerate(self.ids)}
        missing = [key for key in ids if key not in index]
        if missing:
            raise KeyError(f"{len(missing)} IDs are not in the data, e.g. {missing[:3]}")
        rows = [index[key] for key in ids]
        return CachedPairs(list(ids), self.images[rows], self.masks[rows])


def _cache_key(pairs: list[Pair], size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{size}".encode())
    for pair in pairs:
        for path in (pair.image, pair.mask):
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def load_cached_pairs(pairs: list[Pair], size: int, cache_dir: str | Path | None = None) -> CachedPairs:
    """Resize all pairs once and keep them under ``cache_dir``; later calls load the arrays.

    A pair whose image or mask cannot be read, or whose sizes differ, is left out with a warning that
    names the file. The cache is keyed on paths, sizes and modification times, so changed data is rebuilt.
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = folder / f"pairs_{size}_{_cache_key(pairs, size)}"
    index_file = folder / "index.json"
    if index_file.exists():
        ids = json.loads(index_file.read_text())["ids"]
        return CachedPairs(ids, np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "masks.npy"))
    images = np.zeros((len(pairs), size, size, 3), np.uint8)
    masks = np.zeros((len(pairs), size, size), bool)
    ids: list[str] = []
    for pair in tqdm(pairs, desc=f"caching {len(pairs)} pairs at {size}px", unit="img", leave=False):
        try:
            image, mask = read_pair(pair)
        except InputError as err:
            warnings.warn(f"skipped pair {pair.id}: {err}", stacklevel=2)
            continue
        images[len(ids)] = resize_image(image, size)
        masks[len(ids)] = resize_mask(mask, size)
        ids.append(pair.id)
    if not ids:
        raise LayoutError(f"none of the {len(pairs)} image/mask pairs could be read (see the warnings above)")
    images, masks = images[: len(ids)], masks[: len(ids)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in (("images.npy", images), ("masks.npy", masks)):
        with atomic_path(folder / name) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    with atomic_path(index_file) as tmp:  # written last: its presence marks a complete cache
        tmp.write_text(json.dumps({"ids": ids, "size": size}))
    return CachedPairs(ids, images, masks)
