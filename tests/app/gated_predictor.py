"""A fake model for the app's queue tests: it blocks until its gate opens and predicts no lesion anywhere."""

from __future__ import annotations

import threading

import numpy as np

from skinnet.config import Config
from skinnet.inference.predictor import Predictor


class GatedPredictor(Predictor):
    """Holds each batch until ``gate`` is set; ``started`` is set at the first call, ``calls`` counts images."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls = 0

    def predict_proba_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        self.calls += len(images)
        self.started.set()
        assert self.gate.wait(timeout=30)
        return [np.zeros(image.shape[:2], dtype=np.float32) for image in images]

    def to_mask(self, probability: np.ndarray) -> np.ndarray:
        return probability > 0.5

    def predict_views_batch(self, images: list[np.ndarray], max_side: int | None = None) -> list[np.ndarray]:
        return [np.zeros((4, 8, 8), np.float32) for _ in images]
