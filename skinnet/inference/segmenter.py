"""From an RGB image of any size to a lesion mask of the same size."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from skinnet.config import Config, ConfigError
from skinnet.data.cache import resize_image
from skinnet.data.normalize import prepare_input
from skinnet.devices import resolve_device
from skinnet.inference.model_guard import load_checked
from skinnet.inference.predictor import Predictor, as_rgb_images, check_batch_size, check_flag, view_size
from skinnet.networks.files import ModelFileError
from skinnet.weights import default_model_path

# An engine maps normalised float32 (N, 3, S, S) to lesion probabilities (N, S, S).
Engine = Callable[[np.ndarray], np.ndarray]
BACKENDS = ("torch", "onnx")
# Flip test-time augmentation: the image, flipped left-right, up-down, and both (axes of an (N, C, H, W) batch).
FLIPS = [(), (-1,), (-2,), (-2, -1)]


class TorchEngine:
    """A PyTorch network as an engine: softmax of its 2-class logits.

    Args:
        model: the network.
        device: where it runs; defaults to the model's device.
        half: float16 autocast; ``None`` uses it on CUDA only (tested to match float32 there,
            tests/inference/test_gpu_batches.py).
    """

    def __init__(self, model: nn.Module, device: torch.device | None = None, half: bool | None = None) -> None:
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.half = self.device.type == "cuda" if half is None else half

    @property
    def precision(self) -> str:
        """The arithmetic of the forward pass, as :meth:`Segmenter.describe` reports it."""
        return "float16" if self.half else "float32"

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch).to(self.device)
        with torch.autocast(self.device.type, enabled=self.half):
            logits = self.model(tensor)
        return torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()


class Segmenter(Predictor):
    """Resize to the network's input size, normalise, run the network, resize the probability back, threshold.

    The probabilities and their flip views are computed here; thresholding, post-processing and the
    one-image methods are :class:`~skinnet.inference.predictor.Predictor`'s.

    Args:
        model: a network returning 2-class logits, or an engine (see :data:`Engine`).
        config: the run config the network was trained with (input size, normalisation, post-processing).
        device: where a torch network runs; defaults to the model's device.
        batch_size: images per forward pass in :meth:`predict_proba_batch`.
        tta: average the probabilities over the image and its horizontal, vertical and double flips;
            ``None`` takes the choice saved with the model (``config.inference.tta``).
        postprocess: steps applied to each mask (see :mod:`skinnet.inference.postprocess`); ``None`` takes
            the steps saved with the model (``config.inference.postprocess``), ``[]`` disables them.
    """

    def __init__(self, model: nn.Module | Engine, config: Config, device: torch.device | None = None,
                 batch_size: int = 4, tta: bool | None = None, postprocess: Sequence[str] | None = None) -> None:
        super().__init__(config, postprocess)  # model_files: set by from_file
        self.batch_size = check_batch_size(batch_size)
        tta = check_flag(tta, "tta")
        self.engine: Engine = TorchEngine(model, device) if isinstance(model, nn.Module) else model
        self.model = model
        self.device = getattr(self.engine, "device", torch.device("cpu"))
        self.tta = config.inference.tta if tta is None else tta

    @classmethod
    def from_file(cls, path: str | Path | None = None, device: str = "auto", batch_size: int = 4,
                  backend: str = "torch", tta: bool | None = None, postprocess: Sequence[str] | None = None,
                  threads: int | None = None, precision: str | None = None) -> Segmenter:
        """Load a model file: ``.safetensors``, a training checkpoint ``.pt``, or an exported ``.onnx``.

        Args:
            path: the model file; ``None`` for the model shipped with the package.
            device: torch device for the torch backend ("auto", "cpu", "cuda", ...).
            batch_size: images per forward pass.
            backend: "torch", or "onnx" (ONNX Runtime; weights files are exported once and cached).
            tta: flip test-time augmentation; ``None`` takes the model's saved choice.
            postprocess: override the post-processing saved with the model.
            threads: ONNX Runtime intra-op threads (default: all cores).
            precision: "int8" runs a weights file's int8 copy through ONNX Runtime (quantised once, calibrated
                on the bundled samples, and cached: :func:`skinnet.inference.quantize.cached_int8`); about 2x
                faster on a CPU. ``None`` or "float32": float32, or an ``.onnx`` file's own precision.

        Raises:
            ModelFileError: the file cannot be used.
            ConfigError: an unknown backend or precision, int8 with the torch backend, or int8 asked of a
                float32 ``.onnx`` file.
        """
        if path is None:
            path = default_model_path()
            if path is None:
                raise ModelFileError("no model given and no shipped model found in skinnet/weights/")
        path = source = Path(path)
        check_batch_size(batch_size)  # before loading anything
        check_flag(tta, "tta")
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if precision not in (None, "float32", "int8"):
            raise ConfigError(f"unknown precision {precision!r}; choose float32 or int8")
        if precision == "int8" and backend != "onnx" and path.suffix != ".onnx":
            raise ConfigError("int8 runs on ONNX Runtime: use the onnx backend (--backend onnx)")
        if path.suffix == ".onnx" or backend == "onnx":
            from skinnet.inference.onnx import OnnxModel, cached_export

            if path.suffix != ".onnx" and precision == "int8":
                from skinnet.inference.quantize import cached_int8

                path = cached_int8(path)
            elif path.suffix != ".onnx":
                path = cached_export(path)
            engine = OnnxModel(path, threads)
            if precision is not None and engine.precision != precision:
                raise ConfigError(f"{source}: a {engine.precision} ONNX file, not {precision} (an int8 copy: "
                                  "skinnet export --int8, or pass the weights file)")
            segmenter = cls(engine, engine.config, batch_size=batch_size, tta=tta, postprocess=postprocess)
        else:
            torch_device = resolve_device(device)
            model, config = load_checked(path, torch_device)
            segmenter = cls(model, config, torch_device, batch_size, tta, postprocess)
        segmenter.model_files = [source]
        return segmenter

    def _probabilities(self, resized: np.ndarray) -> np.ndarray:
        """Lesion probabilities ``(N, S, S)`` of resized uint8 images ``(N, S, S, 3)``, flip-averaged with TTA."""
        batch = prepare_input(resized, self.config.data)
        if not self.tta:
            return self.engine(batch)
        return self._flip_views(batch).mean(axis=0)

    def _flip_views(self, batch: np.ndarray) -> np.ndarray:
        """``(4, N, S, S)``: the probabilities of a prepared batch and of its three flips, flipped back."""
        stacked = np.concatenate([np.flip(batch, axes) if axes else batch for axes in FLIPS])
        probs = np.split(self.engine(np.ascontiguousarray(stacked)), len(FLIPS))
        return np.stack([np.flip(p, axes) if axes else p for p, axes in zip(probs, FLIPS, strict=True)])

    def predict_views_batch(self, images: Sequence[np.ndarray], max_side: int | None = None) -> list[np.ndarray]:
        """The lesion probability of each flip view of each image, whether or not :attr:`tta` averages them.

        Args:
            images: RGB uint8 images.
            max_side: shrink the maps so that their longer side is at most this (``None``: the image's size).

        Returns:
            One ``float32 (4, h, w)`` per image: the image, then flipped left-right, up-down and both, each
            flipped back; their disagreement is a confidence measure (:mod:`skinnet.clinical.confidence`).
        """
        images = as_rgb_images(images)
        size = self.config.data.image_size
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = prepare_input(np.stack([resize_image(image, size) for image in chunk]), self.config.data)
            views = self._flip_views(batch)
            for index, image in enumerate(chunk):
                height, width = view_size(*image.shape[:2], max_side)
                out.append(np.stack([cv2.resize(view, (width, height), interpolation=cv2.INTER_LINEAR)
                                     for view in views[:, index]]))
        return out

    def describe(self) -> dict[str, Any]:
        """The engine, its precision, TTA, threshold and post-processing."""
        return {"engine": type(self.engine).__name__,
                "precision": getattr(self.engine, "precision", "float32"),
                "tta": bool(self.tta), "threshold": self.threshold, "postprocess": list(self.postprocess)}

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability ``float32 (H, W)`` for each RGB uint8 image, at each image's own size.

        Raises:
            TypeError, ValueError: an image that is not RGB uint8 (see :func:`as_rgb_image`).
        """
        images = as_rgb_images(images)
        size = self.config.data.image_size
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            probs = self._probabilities(np.stack([resize_image(image, size) for image in chunk]))
            for image, prob in zip(chunk, probs, strict=True):
                height, width = image.shape[:2]
                out.append(cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR))
        return out
