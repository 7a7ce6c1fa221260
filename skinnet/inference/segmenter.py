"""From an RGB image of any size to a lesion mask of the same size."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from skinnet.config import Config, ConfigError
from skinnet.data.cache import default_cache_dir, resize_image
from skinnet.data.transforms import normalize
from skinnet.inference.postprocess import STEPS, apply_postprocessing
from skinnet.networks.files import ModelFileError, load_model
from skinnet.weights import default_model_path

# An engine maps normalised float32 (N, 3, S, S) to lesion probabilities (N, S, S).
Engine = Callable[[np.ndarray], np.ndarray]
BACKENDS = ("torch", "onnx")


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; any other value is passed to ``torch.device``.

    Raises:
        ConfigError: ``name`` is not a device, or names a CUDA device that this machine or torch build lacks.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device name (auto, cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", a build without CUDA"
        raise ConfigError(f"device {name!r}: no CUDA GPU is usable here (torch {torch.__version__}{build}); "
                          "use cpu, or install a CUDA build of torch (README, 'GPU users')")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


class TorchEngine:
    """A PyTorch network as an engine (softmax of its 2-class logits; float16 autocast on CUDA)."""

    def __init__(self, model: nn.Module, device: torch.device | None = None) -> None:
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device).eval()

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(batch).to(self.device)
        with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            logits = self.model(tensor)
        return torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()


def onnx_path_for(weights: Path) -> Path:
    """Where the ONNX export of a weights file is cached (keyed by the file's content)."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return default_cache_dir() / "onnx" / f"{weights.stem}-{digest}.onnx"


class Segmenter:
    """Resize to the network's input size, normalise, run the network, resize the probability back, threshold.

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
        self.engine: Engine = TorchEngine(model, device) if isinstance(model, nn.Module) else model
        self.model = model
        self.device = getattr(self.engine, "device", torch.device("cpu"))
        self.config = config
        self.batch_size = batch_size
        self.tta = config.inference.tta if tta is None else tta
        self.postprocess = list(config.inference.postprocess if postprocess is None else postprocess)
        unknown = set(self.postprocess) - set(STEPS)
        if unknown:
            raise ConfigError(f"unknown post-processing {sorted(unknown)}; known: {', '.join(STEPS)}")

    @classmethod
    def from_file(cls, path: str | Path | None = None, device: str = "auto", batch_size: int = 4,
                  backend: str = "torch", tta: bool | None = None, postprocess: Sequence[str] | None = None,
                  threads: int | None = None) -> Segmenter:
        """Load a model file: ``.safetensors``, a training checkpoint ``.pt``, or an exported ``.onnx``.

        Args:
            path: the model file; ``None`` for the model shipped with the package.
            device: torch device for the torch backend ("auto", "cpu", "cuda", ...).
            batch_size: images per forward pass.
            backend: "torch", or "onnx" (ONNX Runtime; weights files are exported once and cached).
            tta: flip test-time augmentation; ``None`` takes the model's saved choice.
            postprocess: override the post-processing saved with the model.
            threads: ONNX Runtime intra-op threads (default: all cores).
        """
        if path is None:
            path = default_model_path()
            if path is None:
                raise ModelFileError("no model given and no shipped model found in skinnet/weights/")
        path = Path(path)
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if path.suffix == ".onnx" or backend == "onnx":
            from skinnet.inference.onnx import OnnxModel, export_onnx

            if path.suffix != ".onnx":
                onnx_file = onnx_path_for(path)
                if not onnx_file.exists():
                    model, config = load_model(path)
                    export_onnx(model, config, onnx_file)
                path = onnx_file
            engine = OnnxModel(path, threads)
            return cls(engine, engine.config, batch_size=batch_size, tta=tta, postprocess=postprocess)
        torch_device = resolve_device(device)
        model, config = load_model(path, torch_device)
        return cls(model, config, torch_device, batch_size, tta, postprocess)

    def _probabilities(self, resized: np.ndarray) -> np.ndarray:
        """Lesion probabilities ``(N, S, S)`` of resized uint8 images ``(N, S, S, 3)``, flip-averaged with TTA."""
        batch = normalize(resized, self.config.data.mean, self.config.data.std)
        if not self.tta:
            return self.engine(batch)
        flips = [(), (-1,), (-2,), (-2, -1)]
        stacked = np.concatenate([np.flip(batch, axes) if axes else batch for axes in flips])
        probs = np.split(self.engine(np.ascontiguousarray(stacked)), len(flips))
        return np.mean([np.flip(p, axes) if axes else p for p, axes in zip(probs, flips, strict=True)], axis=0)

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability ``float32 (H, W)`` for each RGB uint8 image, at each image's own size."""
        size = self.config.data.image_size
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            probs = self._probabilities(np.stack([resize_image(image, size) for image in chunk]))
            for image, prob in zip(chunk, probs, strict=True):
                height, width = image.shape[:2]
                out.append(cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR))
        return out

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Lesion probability of one image at its own size."""
        return self.predict_proba_batch([image])[0]

    def to_mask(self, probability: np.ndarray) -> np.ndarray:
        """Threshold a probability map and apply the post-processing."""
        return apply_postprocessing(probability > self.config.inference.threshold, self.postprocess)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Boolean lesion mask of one image at its own size."""
        return self.to_mask(self.predict_proba(image))
