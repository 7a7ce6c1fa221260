"""Evaluation: scoring folders of masks."""

from skinnet.evaluation.evaluate import Evaluation, evaluate_folders

__all__ = ["Evaluation", "evaluate_folders"]
