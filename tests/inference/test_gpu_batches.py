"""On a GPU: float16 autocast and batches of images match float32 one image at a time (skipped without CUDA)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from skinnet.data.io import read_image
from skinnet.inference.segmenter import Segmenter, TorchBackend
from skinnet.networks.files import load_model
from skinnet.weights import default_model_path

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TOLERANCE = 1e-2  # on lesion probabilities, as for float16 model files (test_segmenter.py)


def segmenters(batch_size: int) -> tuple[Segmenter, Segmenter]:
    """The shipped model on the GPU in float16 autocast (the default there) and in float32."""
    device = torch.device("cuda")
    model, config = load_model(default_model_path(), device)
    assert TorchBackend(model, device).half  # the default on CUDA is what is tested here
    return (Segmenter(TorchBackend(model, device, half=True), config, batch_size=batch_size),
            Segmenter(TorchBackend(model, device, half=False), config, batch_size=batch_size))


def test_half_precision_matches_float32_within_the_tolerance(sample_data: Path) -> None:
    images = [read_image(path) for path in sorted((sample_data / "images").glob("*.jpg"))[:16]]
    half, full = segmenters(batch_size=8)
    for p_half, p_full in zip(half.predict_proba_batch(images), full.predict_proba_batch(images), strict=True):
        assert np.abs(p_half - p_full).max() < TOLERANCE
        assert np.mean(half.to_mask(p_half) == full.to_mask(p_full)) > 0.999


def test_batches_match_one_image_at_a_time(sample_data: Path) -> None:
    images = [read_image(path) for path in sorted((sample_data / "images").glob("*.jpg"))[:16]]
    batched, _ = segmenters(batch_size=8)
    single, _ = segmenters(batch_size=1)
    for p_batch, p_single in zip(batched.predict_proba_batch(images), single.predict_proba_batch(images),
                                 strict=True):
        assert np.abs(p_batch - p_single).max() < TOLERANCE
