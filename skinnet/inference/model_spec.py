"""Which model to load and how, as a small picklable value: what ``predict`` loads, and each cluster worker."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from skinnet.inference.predictor import Predictor


@dataclass(frozen=True)
class ModelSpec:
    """A model file (or a cross-validation run's fold models) and the options to run it with.

    Attributes:
        model: the model file; ``None`` for the shipped model.
        run: a cross-validation run folder: the ensemble of its fold models (instead of ``model``).
        device: torch device ("auto", "cpu", "cuda", ...).
        backend: "auto", "torch" or "onnx" (see :func:`skinnet.inference.segmenter.choose_runtime`).
        tta: flip test-time augmentation; ``None`` takes the model's saved choice.
        postprocess: post-processing steps; ``None`` takes the model's saved choice.
        threads: CPU threads of the network (torch or ONNX Runtime); ``None``: the library's default.
        batch_size: images per forward pass.
        precision: "auto", "float32", or "int8": the int8 copy of each weights file (ONNX backend). A
            cluster's workers should get the values the client resolved, so that all run the same.
    """

    model: str | None = None
    run: str | None = None
    device: str = "auto"
    backend: str = "auto"
    tta: bool | None = None
    postprocess: tuple[str, ...] | None = None
    threads: int | None = None
    batch_size: int = 1
    precision: str | None = "auto"

    def absolute(self) -> ModelSpec:
        """The same spec with absolute paths, for workers whose working folder differs."""
        return replace(self, model=self.model and str(Path(self.model).absolute()),
                       run=self.run and str(Path(self.run).absolute()))

    def load(self) -> Predictor:
        """Load the :class:`~skinnet.inference.segmenter.Segmenter` (or, with ``run``, the
        :class:`~skinnet.inference.ensemble.Ensemble`).

        With ``threads`` and the torch backend this sets torch's intra-op threads for the whole process.

        Raises:
            ModelFileError: the model file or run folder cannot be used.
            ConfigError: a bad device or post-processing name.
        """
        options: dict[str, Any] = {"device": self.device, "backend": self.backend, "tta": self.tta,
                                   "threads": self.threads, "batch_size": self.batch_size,
                                   "precision": self.precision,
                                   "postprocess": None if self.postprocess is None else list(self.postprocess)}
        if self.threads and self.backend != "onnx":  # auto may resolve to torch
            import torch

            torch.set_num_threads(self.threads)
        if self.run:
            from skinnet.inference.ensemble import Ensemble

            return Ensemble.from_run(self.run, **options)
        from skinnet.inference.segmenter import Segmenter

        return Segmenter.from_file(self.model, **options)
