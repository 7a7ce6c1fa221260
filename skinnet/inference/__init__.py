"""Inference: predictors (a model file, or a run's fold ensemble) and what they write."""

from skinnet.inference.predictor import Predictor
from skinnet.inference.segmenter import Segmenter

__all__ = ["Predictor", "Segmenter"]
