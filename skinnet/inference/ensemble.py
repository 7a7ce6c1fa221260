"""The fold models of a cross-validation run as one segmenter: their lesion probabilities averaged."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.config import Config
from skinnet.inference.postprocess import apply_postprocessing, threshold_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.networks.files import ModelFileError


def fold_models(run_dir: str | Path, name: str = "best.safetensors") -> list[Path]:
    """``run_dir/fold_K/<name>`` of every fold that has one, in fold order.

    Raises:
        ModelFileError: no fold of ``run_dir`` has a model file.
    """
    found = []
    for path in Path(run_dir).glob(f"fold_*/{name}"):
        match = re.fullmatch(r"fold_(\d+)", path.parent.name)
        if match:
            found.append((int(match.group(1)), path))
    if not found:
        raise ModelFileError(f"{run_dir}: no fold_*/{name}; train folds with skinnet cv or skinnet train first")
    return [path for _, path in sorted(found)]


class Ensemble:
    """Several segmenters as one: the mean of their lesion probabilities, then threshold and post-processing.

    Has the interface of :class:`Segmenter` (``predict_proba_batch``, ``predict_proba``, ``to_mask``,
    ``predict``), so it goes wherever a segmenter does (e.g. :func:`skinnet.inference.predict.predict_files`).
    Members may differ in input size: each resizes the image itself and its probability back to the image's
    size. Each member applies its own TTA setting; the threshold and post-processing apply once, to the mean.

    Args:
        members: the segmenters (at least one).
        threshold: lesion where the mean probability exceeds it; ``None`` takes the first member's.
        postprocess: mask post-processing steps; ``None`` takes the first member's.
    """

    def __init__(self, members: Sequence[Segmenter], threshold: float | None = None,
                 postprocess: Sequence[str] | None = None) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = list(members)
        first = self.members[0]
        self.threshold = first.config.inference.threshold if threshold is None else threshold
        self.postprocess = list(first.postprocess if postprocess is None else postprocess)
        self.empty_fallback = first.config.inference.empty_fallback
        # the members' files, when every member came from one (what a batch run records it was made with)
        files = [member.model_files for member in self.members]
        self.model_files = [path for paths in files for path in paths] if all(files) else []

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], device: str = "auto", batch_size: int = 4,
                   tta: bool | None = None, backend: str = "torch", postprocess: Sequence[str] | None = None,
                   threads: int | None = None) -> Ensemble:
        """Load each model file (``.safetensors`` or ``.pt``) as a member.

        Args:
            paths: the model files.
            device: torch device of every member.
            batch_size: images per forward pass.
            tta: flip test-time augmentation for every member; ``None`` takes each model's saved choice.
            backend: "torch" or "onnx" for every member.
            postprocess: mask post-processing; ``None`` takes the first member's saved steps.
            threads: ONNX Runtime threads of each member.
        """
        members = [Segmenter.from_file(path, device=device, batch_size=batch_size, tta=tta, backend=backend,
                                       threads=threads) for path in paths]
        return cls(members, postprocess=postprocess)

    @classmethod
    def from_run(cls, run_dir: str | Path, **options: Any) -> Ensemble:
        """The ``best.safetensors`` of every fold of a cross-validation run (options: see :meth:`from_files`)."""
        return cls.from_files(fold_models(run_dir), **options)

    @property
    def config(self) -> Config:
        """The first member's config (for code that reads ``segmenter.config``)."""
        return self.members[0].config

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Mean lesion probability ``float32 (H, W)`` of the members for each RGB uint8 image."""
        total = self.members[0].predict_proba_batch(images)
        for member in self.members[1:]:
            for acc, prob in zip(total, member.predict_proba_batch(images), strict=True):
                acc += prob  # in place: one full-size array per image, however many members
        return [acc / len(self.members) for acc in total]

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Mean lesion probability of one image at its own size."""
        return self.predict_proba_batch([image])[0]

    def predict_views_batch(self, images: Sequence[np.ndarray], max_side: int | None = None) -> list[np.ndarray]:
        """Every member's flip views (:meth:`Segmenter.predict_views_batch`): ``(4 x members, h, w)`` per image."""
        per_member = [member.predict_views_batch(images, max_side) for member in self.members]
        return [np.concatenate(views) for views in zip(*per_member, strict=True)]

    def to_mask(self, probability: np.ndarray) -> np.ndarray:
        """Threshold a (mean) probability map (with the first member's empty-mask fallback) and post-process."""
        return apply_postprocessing(threshold_mask(probability, self.threshold, self.empty_fallback),
                                    self.postprocess)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Boolean lesion mask of one image at its own size."""
        return self.to_mask(self.predict_proba(image))
