"""From an RGB image of any size to a lesion mask of the same size."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import torch
from torch import nn

from skinnet.config import BACKEND_CHOICES, PRECISION_CHOICES, Config, ConfigError
from skinnet.data.cache import resize_image
from skinnet.data.normalize import prepare_input
from skinnet.devices import resolve_device
from skinnet.inference.predictor import (
    FLIPS,
    Predictor,
    as_rgb_images,
    check_batch_size,
    check_flag,
    flip,
    view_size,
)
from skinnet.networks.files import load_model, model_path
from skinnet.weights import is_shipped_model, packaged_int8_path

# A backend runs the network of each batch: normalised float32 (N, 3, S, S) in, lesion probabilities (N, S, S)
# out (TorchBackend here, skinnet.inference.onnx.OnnxBackend).
Backend = Callable[[np.ndarray], np.ndarray]


class Runtime(NamedTuple):
    """The backend and precision a model file runs with, as :func:`choose_runtime` resolves them.

    Attributes:
        backend: "torch" or "onnx".
        precision: "float32" or "int8"; ``None`` for an ``.onnx`` file's own.
        note: why the default is not the faster int8 copy (its extra is not installed); else empty.
    """

    backend: str
    precision: str | None
    note: str = ""


def onnx_available() -> bool:
    """Whether the 'onnx' extra (onnx and onnxruntime) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def choose_runtime(path: str | Path | None, backend: str | None = "auto", precision: str | None = "auto",
                   device: str = "auto") -> Runtime:
    """Resolve ``auto`` for a model file: the fastest path that scores the same.

    With neither chosen (``auto``): the shipped model on a CPU runs its packaged int8 copy on ONNX Runtime
    (2x faster, the same out-of-fold Dice: docs/results/speed.md), where the 'onnx' extra is installed;
    everything else runs torch float32 (float16 autocast on a GPU), as does the shipped model on a GPU or
    without the extra (then :attr:`Runtime.note` says so). ``precision="int8"`` runs on ONNX Runtime;
    ``backend="onnx"`` alone runs float32 there. An ``.onnx`` file runs on ONNX Runtime in its own precision.

    Args:
        path: the model file; ``None`` for several (an ensemble), which have no packaged copy.
        backend: "auto", "torch" or "onnx" (``None``: auto).
        precision: "auto", "float32" or "int8" (``None``: auto).
        device: the torch device name; a CUDA device keeps torch float32.

    Raises:
        ConfigError: an unknown backend or precision, or int8 with the torch backend.
    """
    backend, precision = backend or "auto", precision or "auto"
    if backend not in BACKEND_CHOICES:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_CHOICES)}")
    if precision not in PRECISION_CHOICES:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if path is not None and Path(path).suffix == ".onnx":
        return Runtime("onnx", None if precision == "auto" else precision)
    if precision == "int8":
        if backend == "torch":
            raise ConfigError("int8 runs on ONNX Runtime: use the onnx backend (--backend onnx)")
        return Runtime("onnx", "int8")
    if precision == "float32" or backend != "auto":
        return Runtime("torch" if backend == "auto" else backend, "float32")
    if path is None or not is_shipped_model(path) or packaged_int8_path() is None:
        return Runtime("torch", "float32")
    if resolve_device(device).type != "cpu":
        return Runtime("torch", "float32")
    if not onnx_available():
        return Runtime("torch", "float32", "the 'onnx' extra is not installed, so the shipped model runs in "
                                           "torch float32 instead of its int8 copy on ONNX Runtime (about 2x "
                                           "faster on a CPU, the same Dice): pip install 'skinnet[onnx]'")
    return Runtime("onnx", "int8")


class TorchBackend:
    """A PyTorch network as a backend: softmax of its 2-class logits.

    Args:
        model: the network.
        device: where it runs; defaults to the model's device.
        half: float16 autocast; ``None`` uses it on CUDA only (tested to match float32 there,
            tests/inference/test_gpu_batches.py).
    """

    # How a run's manifest names this backend: the class's name before it was renamed (issue 22), kept so
    # that run keys do not change and a resumed archive keeps the outputs it has.
    manifest_name = "TorchEngine"
    backend = "torch"

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
        return self.probabilities(torch.from_numpy(batch).to(self.device)).cpu().numpy()

    @torch.inference_mode()
    def probabilities(self, tensor: torch.Tensor, tta: bool = False) -> torch.Tensor:
        """Lesion probabilities ``(N, S, S)`` on the device of a prepared batch there; with ``tta`` the mean
        of its four flip views, flipped and averaged on the device in the order and arithmetic of
        :meth:`Segmenter._flip_views` (so the same numbers as that NumPy path: tested)."""
        if tta:
            # FLIPS are axes of the (height, width) plane: dimensions 2, 3 of (N, C, H, W), 1, 2 of (N, H, W)
            tensor = torch.cat([torch.flip(tensor, [2 + axis for axis in axes]) if axes else tensor
                                for axes in FLIPS])
        with torch.autocast(self.device.type, enabled=self.half):
            logits = self.model(tensor)
        probs = torch.softmax(logits.float(), dim=1)[:, 1]
        if not tta:
            return probs
        views = [torch.flip(view, [1 + axis for axis in axes]) if axes else view
                 for view, axes in zip(probs.chunk(len(FLIPS)), FLIPS, strict=True)]
        total = views[0].clone()
        for view in views[1:]:  # one view after another, as NumPy's mean over the first axis adds them
            total += view
        return total / len(FLIPS)

    @torch.inference_mode()
    def masks(self, batch: np.ndarray, shapes: Sequence[tuple[int, int]], threshold: float, tta: bool,
              empty_fallback: bool = False) -> list[np.ndarray]:
        """Thresholded lesion masks ``uint8 (H, W)`` (0/1) of a prepared batch, each at its own ``shapes`` size,
        resized (bilinear, as ``cv2.INTER_LINEAR``) and thresholded on the device: only the masks come back.

        Where a mask is empty and ``empty_fallback`` is on, the full-size probability ``float32`` comes back
        instead, for :meth:`Predictor.to_mask`'s fallback.
        """
        probs = self.probabilities(torch.from_numpy(batch).to(self.device), tta)
        out: list[np.ndarray] = []
        for prob, (height, width) in zip(probs, shapes, strict=False):  # padding has no shape: ignored
            full = torch.nn.functional.interpolate(prob[None, None], size=(height, width), mode="bilinear",
                                                   align_corners=False)[0, 0]
            mask = full > threshold
            if empty_fallback and not bool(mask.any()):
                out.append(full.cpu().numpy())
            else:
                out.append(mask.to(torch.uint8).cpu().numpy())
        return out


class Segmenter(Predictor):
    """Resize to the network's input size, normalise, run the network, resize the probability back, threshold.

    The probabilities and their flip views are computed here; thresholding, post-processing and the
    one-image methods are :class:`~skinnet.inference.predictor.Predictor`'s.

    Args:
        model: a network returning 2-class logits, or a backend (see :data:`Backend`).
        config: the run config the network was trained with (input size, normalisation, post-processing).
        device: where a torch network runs; defaults to the model's device.
        batch_size: images per forward pass in :meth:`predict_proba_batch`.
        tta: average the probabilities over the image and its horizontal, vertical and double flips;
            ``None`` takes the choice saved with the model (``config.inference.tta``).
        postprocess: steps applied to each mask (see :mod:`skinnet.inference.postprocess`); ``None`` takes
            the steps saved with the model (``config.inference.postprocess``), ``[]`` disables them.
    """

    def __init__(self, model: nn.Module | Backend, config: Config, device: torch.device | None = None,
                 batch_size: int = 4, tta: bool | None = None, postprocess: Sequence[str] | None = None) -> None:
        super().__init__(config, postprocess)  # model_files: set by from_file
        self.batch_size = check_batch_size(batch_size)
        tta = check_flag(tta, "tta")
        self.backend: Backend = TorchBackend(model, device) if isinstance(model, nn.Module) else model
        self.model = model
        self.device = getattr(self.backend, "device", torch.device("cpu"))
        self.tta = config.inference.tta if tta is None else tta

    @classmethod
    def from_file(cls, path: str | Path | None = None, device: str = "auto", batch_size: int = 4,
                  backend: str = "auto", tta: bool | None = None, postprocess: Sequence[str] | None = None,
                  threads: int | None = None, precision: str | None = "auto") -> Segmenter:
        """Load a model file: ``.safetensors``, a training checkpoint ``.pt``, or an exported ``.onnx``.

        Args:
            path: the model file; ``None`` for the model shipped with the package.
            device: torch device for the torch backend ("auto", "cpu", "cuda", ...).
            batch_size: images per forward pass.
            backend: "auto", "torch", or "onnx" (ONNX Runtime; weights files are exported once and cached).
            tta: flip test-time augmentation; ``None`` takes the model's saved choice.
            postprocess: override the post-processing saved with the model.
            threads: ONNX Runtime intra-op threads (default: all cores).
            precision: "auto", "float32" or "int8". "int8" runs a weights file's int8 copy through ONNX
                Runtime, about 2x faster on a CPU: for the shipped model the copy in the package
                (:data:`skinnet.weights.PACKAGED_INT8`, no quantisation step), for other weights a copy
                quantised once, calibrated on the bundled samples, and cached
                (:func:`skinnet.inference.quantize.cached_int8`). With backend and precision both "auto" (or
                ``None``), the shipped model on a CPU runs its packaged int8 copy, everything else torch
                float32 (:func:`choose_runtime`). An ``.onnx`` file runs in its own precision.

        Raises:
            ModelFileError: the file cannot be used (or the packaged int8 copy is not the shipped model's).
            ConfigError: an unknown backend or precision, int8 with the torch backend, or int8 asked of a
                float32 ``.onnx`` file.
        """
        path = source = model_path(path)
        check_batch_size(batch_size)  # before loading anything
        check_flag(tta, "tta")
        backend, precision, _ = choose_runtime(path, backend, precision, device)
        if backend == "onnx":
            from skinnet.inference.onnx import OnnxBackend, cached_export

            if path.suffix != ".onnx" and precision == "int8":
                from skinnet.inference.quantize import int8_copy

                path = int8_copy(path)
            elif path.suffix != ".onnx":
                path = cached_export(path)
            onnx_backend = OnnxBackend(path, threads)
            if precision is not None and onnx_backend.precision != precision:
                raise ConfigError(f"{source}: a {onnx_backend.precision} ONNX file, not {precision} (an int8 "
                                  "copy: skinnet export --int8, or pass the weights file)")
            segmenter = cls(onnx_backend, onnx_backend.config, batch_size=batch_size, tta=tta,
                            postprocess=postprocess)
        else:
            torch_device = resolve_device(device)
            model, config = load_model(path, torch_device)
            segmenter = cls(model, config, torch_device, batch_size, tta, postprocess)
        segmenter.model_files = [source]
        return segmenter

    @property
    def runtime(self) -> str:
        """The backend and the arithmetic of the forward pass, e.g. ``"onnx int8"`` or ``"torch float32"``."""
        backend = getattr(self.backend, "backend", type(self.backend).__name__)
        return f"{backend} {getattr(self.backend, 'precision', 'float32')}"

    def _probabilities(self, resized: np.ndarray) -> np.ndarray:
        """Lesion probabilities ``(N, S, S)`` of resized uint8 images ``(N, S, S, 3)``, flip-averaged with TTA."""
        return self.network(prepare_input(resized, self.config.data))

    def network_inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The prepared batch ``float32 (N, 3, S, S)`` of RGB uint8 images: resized, colour constancy,
        normalisation. Needs only the config, so a worker process can run it (:mod:`skinnet.batch.processes`)."""
        size = self.config.data.image_size
        return prepare_input(np.stack([resize_image(image, size) for image in images]), self.config.data)

    def network(self, batch: np.ndarray) -> np.ndarray:
        """Lesion probabilities ``(N, S, S)`` of a prepared batch, flip-averaged with TTA: the network's part."""
        if isinstance(self.backend, TorchBackend):  # flips and their mean on the device: the same numbers
            tensor = torch.from_numpy(batch).to(self.backend.device)
            return self.backend.probabilities(tensor, self.tta).cpu().numpy()
        if not self.tta:
            return self.backend(batch)
        return self._flip_views(batch).mean(axis=0)

    def _flip_views(self, batch: np.ndarray) -> np.ndarray:
        """``(4, N, S, S)``: the probabilities of a prepared batch and of its three flips, flipped back."""
        stacked = np.concatenate([flip(batch, axes, plane=2) for axes in FLIPS])
        probs = np.split(self.backend(np.ascontiguousarray(stacked)), len(FLIPS))
        return np.stack([flip(p, axes, plane=1) for p, axes in zip(probs, FLIPS, strict=True)])

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
        """The backend, its precision, TTA, threshold and post-processing.

        The manifest's key for the backend stays ``"engine"``, and each backend's name its
        ``manifest_name``, as before the engine/backend rename: another spelling would change every run key.
        """
        return {"engine": getattr(self.backend, "manifest_name", type(self.backend).__name__),
                "precision": getattr(self.backend, "precision", "float32"),
                "tta": bool(self.tta), "threshold": self.threshold, "postprocess": list(self.postprocess)}

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability ``float32 (H, W)`` for each RGB uint8 image, at each image's own size.

        Raises:
            TypeError, ValueError: an image that is not RGB uint8 (see :func:`as_rgb_image`).
        """
        images = as_rgb_images(images)
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            out.extend(full_size(self.network(self.network_inputs(chunk)), chunk))
        return out


def output_shape(image: np.ndarray) -> tuple[int, int]:
    """``(height, width)`` of the mask an image gets: its own, or the full size of a draft-decoded JPEG
    (:func:`skinnet.data.io.read_image_draft`)."""
    return getattr(image, "full_shape", None) or image.shape[:2]


def full_size(probabilities: np.ndarray, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each network-size probability map resized (bilinear) to its image's :func:`output_shape`."""
    out = []
    for image, prob in zip(images, probabilities, strict=True):
        height, width = output_shape(image)
        out.append(cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR))
    return out
