"""Inference: predictors (a model file, or a run's fold ensemble), their backends and post-processing."""

from skinnet.inference.predictor import Predictor
from skinnet.inference.segmenter import Segmenter

__all__ = ["Predictor", "Segmenter"]
