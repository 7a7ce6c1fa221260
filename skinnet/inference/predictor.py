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

from skinnet.config import Config, check_postprocess
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
        """Lesion probability ``float32 (H, W)`` for each RGB uint8 image, at each image's own size."""

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Lesion probability of one image at its own size."""
        return self.predict_proba_batch([image])[0]

    def to_mask(self, probability: np.ndarray) -> np.ndarray:
        """Threshold a probability map (with the empty-mask fallback if chosen) and apply the post-processing."""
        return apply_postprocessing(threshold_mask(probability, self.threshold, self.empty_fallback),
                                    self.postprocess)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Boolean lesion mask of one image at its own size."""
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
