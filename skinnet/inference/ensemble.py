"""The fold models of a cross-validation run as one segmenter: their lesion probabilities averaged."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.inference.predictor import Predictor, as_rgb_images
from skinnet.inference.segmenter import Segmenter, choose_runtime
from skinnet.runs import fold_models


class Ensemble(Predictor):
    """Several segmenters as one: the mean of their lesion probabilities, then threshold and post-processing.

    A :class:`~skinnet.inference.predictor.Predictor`, so it goes wherever a segmenter does (e.g.
    :func:`skinnet.batch.run.predict_files`); its config is the first member's. Members may differ
    in input size: each resizes the image itself and its probability back to the image's size. Each member
    applies its own TTA setting; the threshold and post-processing apply once, to the mean.

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
        super().__init__(first.config, first.postprocess if postprocess is None else postprocess, threshold)
        # the members' files, when every member came from one (what a batch run records it was made with)
        files = [member.model_files for member in self.members]
        self.model_files = [path for paths in files for path in paths] if all(files) else []

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], device: str = "auto", batch_size: int = 4,
                   tta: bool | None = None, backend: str = "auto", postprocess: Sequence[str] | None = None,
                   threads: int | None = None, precision: str | None = "auto") -> Ensemble:
        """Load each model file (``.safetensors`` or ``.pt``) as a member.

        Args:
            paths: the model files.
            device: torch device of every member.
            batch_size: images per forward pass.
            tta: flip test-time augmentation for every member; ``None`` takes each model's saved choice.
            backend: "auto" (torch, or onnx with int8), "torch" or "onnx" for every member.
            postprocess: mask post-processing; ``None`` takes the first member's saved steps.
            threads: ONNX Runtime threads of each member.
            precision: "auto" (float32), "float32", or "int8" for every member's int8 copy (see
                :meth:`Segmenter.from_file`); the members always share one backend and precision.

        Raises:
            TypeError: one path instead of a list of them.
        """
        if isinstance(paths, str | Path):
            raise TypeError(f"expected a list of model files, got the single path {str(paths)!r}: "
                            "Ensemble.from_files([path])")
        backend, precision, _ = choose_runtime(None, backend, precision, device)
        members = [Segmenter.from_file(path, device=device, batch_size=batch_size, tta=tta, backend=backend,
                                       threads=threads, precision=precision) for path in paths]
        return cls(members, postprocess=postprocess)

    @property
    def runtime(self) -> str:
        """The members' backend and precision (:attr:`Segmenter.runtime`), ``;``-separated where they differ."""
        return ";".join(dict.fromkeys(member.runtime for member in self.members))

    def describe(self) -> dict[str, Any]:
        """The members' choices, and the threshold and post-processing applied to their mean."""
        return {"ensemble": [member.describe() for member in self.members], "threshold": self.threshold,
                "postprocess": list(self.postprocess)}

    @classmethod
    def from_run(cls, run_dir: str | Path, **options: Any) -> Ensemble:
        """The kept model of every fold of a cross-validation run (options: see :meth:`from_files`)."""
        return cls.from_files(fold_models(run_dir), **options)

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Mean lesion probability ``float32 (H, W)`` of the members for each RGB uint8 image."""
        images = as_rgb_images(images)  # once, not per member
        total = self.members[0].predict_proba_batch(images)
        for member in self.members[1:]:
            for acc, prob in zip(total, member.predict_proba_batch(images), strict=True):
                acc += prob  # in place: one full-size array per image, however many members
        return [acc / len(self.members) for acc in total]

    def predict_views_batch(self, images: Sequence[np.ndarray], max_side: int | None = None) -> list[np.ndarray]:
        """Every member's flip views (:meth:`Segmenter.predict_views_batch`): ``(4 x members, h, w)`` per image."""
        images = as_rgb_images(images)
        per_member = [member.predict_views_batch(images, max_side) for member in self.members]
        return [np.concatenate(views) for views in zip(*per_member, strict=True)]
