"""Inference: the Segmenter and what it draws."""

from skinnet.inference.segmenter import Segmenter, resolve_device

__all__ = ["Segmenter", "resolve_device"]
