"""The one interface of every model that segments: lesion probabilities of a batch in, lesion masks out.

A subclass says only how to compute the probabilities (:meth:`Predictor.predict_proba_batch`); the threshold,
the empty-mask fallback, the post-processing and the one-image shortcuts live here, once, so that a
:class:`~skinnet.inference.segmenter.Segmenter`, an :class:`~skinnet.inference.ensemble.Ensemble` or any
other model makes masks the same way and goes wherever a model is taken: batch prediction
(:func:`skinnet.batch.run.predict_files`), the web app and the holdout evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from skinnet.config import Config, ConfigError, check_postprocess
from skinnet.data.checks import InputError, check_size
from skinnet.inference.postprocess import apply_postprocessing, threshold_mask

if TYPE_CHECKING:
    import torch

# The flip views, in the order every list of views keeps: the image, flipped left-right, up-down, and
# both, as axes of the (height, width) plane (see flip).
FLIPS: tuple[tuple[int, ...], ...] = ((), (1,), (0,), (0, 1))


def flip(array: np.ndarray, axes: tuple[int, ...], plane: int = 0) -> np.ndarray:
    """``array`` flipped along the plane axes ``axes`` (one of :data:`FLIPS`), its (height, width) plane
    starting at axis ``plane``: 0 for an ``(H, W, C)`` image or an ``(H, W)`` map, 1 for ``(N, H, W)``
    maps, 2 for an ``(N, C, H, W)`` batch. A flip is its own inverse: flipping a view's map back is the same
    call."""
    return np.flip(array, tuple(plane + axis for axis in axes)) if axes else array


EXPECTED = "an RGB image as a uint8 numpy array of shape (height, width, 3), values 0-255"


def as_rgb_image(image: Any, name: str = "image") -> np.ndarray:
    """The RGB ``uint8 (H, W, 3)`` image every predictor computes on, from what a caller passed.

    Taken as it is: a ``uint8 (H, W, 3)`` array. Converted, since each has one meaning: ``uint8 (H, W)`` and
    ``(H, W, 1)`` grayscale (copied to the three channels), ``uint8 (H, W, 4)`` RGBA (composited on black, as
    :func:`~skinnet.data.io.read_image` reads a PNG with alpha), and a PIL image of mode RGB, RGBA or L (as
    those arrays). Refused, with what to pass instead: every other dtype (float images, whether 0-1 or
    0-255, uint16, int64, bool, float16: the scale is a guess, and a wrong guess gives a wrong mask without
    a word), other shapes (channel-first, 2 or more than 4 channels), an empty image, one over the size
    limits of :func:`~skinnet.data.checks.check_size`, and anything that is not an array or a PIL image.

    Args:
        image: what was passed.
        name: how the messages call it (e.g. ``"images[3]"``).

    Raises:
        TypeError: not an array nor a PIL image.
        ValueError: an array of another dtype or shape, or of a size over the limits.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "RGBA", "L"):
            raise ValueError(f"{name}: a PIL image of mode {image.mode}; convert it first (image.convert('RGB')) "
                             "or read the file with skinnet.read_image")
        image = np.asarray(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected {EXPECTED} (or a PIL image), got a {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = ("; scale it to 0-255 and convert, e.g. np.round(image * 255).astype(np.uint8) for values in 0-1"
                if image.dtype.kind in "fiub" else "")
        raise ValueError(f"{name}: a {image.dtype} array; expected {EXPECTED}{hint}")
    shape = image.shape
    if image.ndim == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        raise ValueError(f"{name}: shape {shape} looks channel-first; expected (height, width, 3): "
                         "np.transpose(image, (1, 2, 0))")
    if image.ndim not in (2, 3) or (image.ndim == 3 and shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: an array of shape {shape}; expected {EXPECTED} (or (height, width) "
                         "grayscale, or RGBA)")
    height, width = shape[:2]
    if height < 1 or width < 1:
        raise ValueError(f"{name}: an empty image ({width}x{height} pixels)")
    try:
        check_size(name, width, height)
    except InputError as err:
        raise ValueError(f"{name}: {err.reason}") from err
    if image.ndim == 2 or shape[2] == 1:
        return np.repeat(image.reshape(height, width, 1), 3, axis=2)
    if shape[2] == 4:
        rgba = Image.fromarray(np.ascontiguousarray(image), "RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return np.asarray(Image.alpha_composite(black, rgba).convert("RGB"))
    return image


def as_rgb_images(images: Any) -> list[np.ndarray]:
    """Each image of a batch through :func:`as_rgb_image`; a single image passed as a batch is refused.

    Raises:
        TypeError: not a sequence of images (one array of 2 or 3 dimensions, a PIL image, a string).
        ValueError: an image :func:`as_rgb_image` refuses.
    """
    from PIL import Image

    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)  # (N, H, W, C): a batch in one array
    if isinstance(images, np.ndarray | Image.Image | str | bytes) or not isinstance(images, Sequence):
        raise TypeError(f"expected a list of images, got a {type(images).__name__}" +
                        (f" of shape {images.shape} (for one image, use predict_proba or predict)"
                         if isinstance(images, np.ndarray) else ""))
    return [as_rgb_image(image, f"images[{index}]") for index, image in enumerate(images)]


def check_flag(value: Any, name: str) -> bool | None:
    """``value`` as a choice that is ``True``, ``False`` or ``None`` (take the model's), nothing else: a string
    such as ``"no"`` would otherwise count as true.

    Raises:
        ConfigError: anything else.
    """
    if value is None or isinstance(value, bool | np.bool_):
        return None if value is None else bool(value)
    raise ConfigError(f"{name} must be True, False or None, got {value!r}")


def check_batch_size(value: Any) -> int:
    """``value`` as images per forward pass: a whole number of at least 1.

    Raises:
        ConfigError: anything else (0 and -1 would fail later, deep inside the network).
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"batch_size must be a whole number of at least 1, got {value!r}")
    return int(value)


def view_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """``(height, width)`` shrunk, keeping the aspect, so that the longer side is at most ``max_side``: the
    one rule for every map made smaller than its image (flip views, confidence scores)."""
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


class Predictor(ABC):
    """A model that gives each RGB ``uint8`` image a lesion probability and a boolean mask of its own size.

    Args:
        config: the run config of the model (threshold, empty-mask fallback, post-processing, confidence).
        postprocess: steps applied to each mask (see :mod:`skinnet.inference.postprocess`); ``None`` takes
            ``config.inference.postprocess``, ``[]`` disables them.
        threshold: lesion where the probability exceeds it; ``None`` follows ``config.inference.threshold``.

    Attributes:
        config: the run config.
        postprocess: the mask post-processing steps.
        model_files: the files the model was loaded from, empty for a model held in memory: a batch run
            records them in its manifest and every result names them.
        device: where the model runs, as shown by the app's health check; ``"unknown"`` unless a subclass
            knows it.

    Raises:
        ConfigError: an unknown post-processing step.
    """

    device: torch.device | str = "unknown"

    def __init__(self, config: Config, postprocess: Sequence[str] | None = None,
                 threshold: float | None = None) -> None:
        if isinstance(postprocess, str):
            raise ConfigError(f"postprocess must be a list of step names, got the string {postprocess!r}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                      or not 0 <= threshold <= 1):
            raise ConfigError(f"threshold must be a number from 0 to 1, got {threshold!r}")
        self.config = config
        self.postprocess = list(config.inference.postprocess if postprocess is None else postprocess)
        self.model_files: list[Path] = []
        self._threshold = threshold
        check_postprocess(self.postprocess, "postprocess")

    @property
    def threshold(self) -> float:
        """The threshold given, else the config's, read when used (a changed config takes effect at once)."""
        return self.config.inference.threshold if self._threshold is None else self._threshold

    @property
    def empty_fallback(self) -> bool:
        """Whether an empty mask becomes the most probable region instead (``config.inference``)."""
        return self.config.inference.empty_fallback

    @abstractmethod
    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability ``float32 (H, W)`` for each RGB uint8 image, at each image's own size.

        Implementations take their images through :func:`as_rgb_images` first, as the Segmenter and the
        Ensemble do: the door where a float, uint16 or channel-first image is refused in one line, before it
        can give a wrong mask.
        """

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Lesion probability of one image at its own size (the image as :func:`as_rgb_image` takes it)."""
        return self.predict_proba_batch([as_rgb_image(image)])[0]

    def to_mask(self, probability: np.ndarray) -> np.ndarray:
        """Threshold a probability map (with the empty-mask fallback if chosen) and apply the post-processing."""
        return apply_postprocessing(threshold_mask(probability, self.threshold, self.empty_fallback),
                                    self.postprocess)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Boolean lesion mask of one image at its own size (the image as :func:`as_rgb_image` takes it)."""
        return self.to_mask(self.predict_proba(image))

    def describe(self) -> dict[str, Any]:
        """The inference choices the outputs depend on: a batch run records them in its manifest, and a
        changed choice makes ``--resume`` predict again. A subclass adds what else its outputs depend on."""
        return {"predictor": type(self).__name__, "threshold": self.threshold,
                "postprocess": list(self.postprocess)}

    def predict_views_batch(self, images: Sequence[np.ndarray], max_side: int | None = None) -> list[np.ndarray]:
        """The lesion probability of each flip view of each image; the ``tta`` confidence compares them.

        This default predicts each image and its three flips as images and flips the probabilities back, so
        that every predictor has views; a subclass that can flip more cheaply overrides it.

        Args:
            images: RGB uint8 images.
            max_side: shrink the maps so that their longer side is at most this (``None``: the image's size).

        Returns:
            One ``float32 (V, h, w)`` per image: the image, then flipped left-right, up-down and both, each
            flipped back (an ensemble gives each member's four).
        """
        images = as_rgb_images(images)
        flipped = [np.ascontiguousarray(flip(image, axes)) for image in images for axes in FLIPS]
        probabilities = self.predict_proba_batch(flipped)
        out: list[np.ndarray] = []
        for index, image in enumerate(images):
            height, width = view_size(*image.shape[:2], max_side)
            views = probabilities[index * len(FLIPS) : (index + 1) * len(FLIPS)]
            out.append(np.stack([
                cv2.resize(np.ascontiguousarray(flip(view, axes)), (width, height),
                           interpolation=cv2.INTER_LINEAR).astype(np.float32, copy=False)
                for view, axes in zip(views, FLIPS, strict=True)]))
        return out
