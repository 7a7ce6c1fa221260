"""From an RGB image of any size to a lesion mask of the same size."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from skinnet.config import Config
from skinnet.data.cache import resize_image
from skinnet.data.transforms import normalize
from skinnet.networks.files import load_model


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; any other value is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Segmenter:
    """Resize to the network's input size, normalise, run the network, resize the lesion probability back.

    Args:
        model: a network returning 2-class logits.
        config: the run config the network was trained with (input size, normalisation).
        device: where to run; defaults to the model's device.
        batch_size: images per forward pass in :meth:`predict_proba_batch`.
    """

    def __init__(self, model: nn.Module, config: Config, device: torch.device | None = None,
                 batch_size: int = 4) -> None:
        self.device = device or next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.config = config
        self.batch_size = batch_size

    @classmethod
    def from_file(cls, path: str | Path, device: str = "auto", batch_size: int = 4) -> Segmenter:
        """Load a ``.safetensors`` model or ``.pt`` checkpoint written by ``skinnet train``."""
        torch_device = resolve_device(device)
        model, config = load_model(path, torch_device)
        return cls(model, config, torch_device, batch_size)

    @torch.inference_mode()
    def _forward(self, images: np.ndarray) -> np.ndarray:
        """Lesion probabilities ``(N, S, S)`` for resized uint8 images ``(N, S, S, 3)``."""
        batch = torch.from_numpy(normalize(images, self.config.data.mean, self.config.data.std))
        batch = batch.to(self.device)
        with torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            logits = self.model(batch)
        return torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability ``float32 (H, W)`` for each RGB uint8 image, at each image's own size."""
        size = self.config.data.image_size
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            probs = self._forward(np.stack([resize_image(image, size) for image in chunk]))
            for image, prob in zip(chunk, probs, strict=True):
                height, width = image.shape[:2]
                out.append(cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR))
        return out

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Lesion probability of one image at its own size."""
        return self.predict_proba_batch([image])[0]

    def predict(self, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Boolean lesion mask of one image at its own size."""
        return self.predict_proba(image) > threshold
