"""The model shipped in skinnet/weights/: found by default, small, and segmenting real lesions well."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data.io import read_image, read_mask
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics, mean_metrics
from skinnet.weights import MODEL_CARD, default_model_path

SHIPPED = default_model_path()
pytestmark = pytest.mark.skipif(SHIPPED is None, reason="no model file in skinnet/weights/")


def test_shipped_model_is_small_and_documented() -> None:
    assert SHIPPED is not None and SHIPPED.stat().st_size < 20 * 2**20
    card = MODEL_CARD.read_text()
    for needed in ("skinnet train", "out-of-fold", "CC-BY-NC", "Intended use", "Limits"):
        assert needed in card, needed


def test_shipped_model_segments_the_sample_pairs(sample_data: Path) -> None:
    # All 40 pairs were in the model's training data: this checks that the file, its preprocessing and its
    # post-processing work together, not how well it generalises (that is the model card's out-of-fold score).
    segmenter = Segmenter.from_file(device="cpu")
    rows = []
    for image_path in sorted((sample_data / "images").glob("*.jpg")):
        truth = read_mask(sample_data / "masks" / f"{image_path.stem}_segmentation.png")
        rows.append(image_metrics(truth, segmenter.predict(read_image(image_path))))
    assert mean_metrics(rows)["DC"] > 0.8


def test_predict_without_model_uses_the_shipped_one(sample_data: Path, tmp_path: Path) -> None:
    source = Image.open(sample_data / "images" / "ISIC_0000025.jpg").resize((1024, 768), Image.BICUBIC)
    source.save(tmp_path / "lesion.jpg", quality=95)
    result = subprocess.run([sys.executable, "-m", "skinnet", "predict", str(tmp_path / "lesion.jpg"), "--out",
                             str(tmp_path / "out"), "--backend", "onnx"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    mask = read_mask(tmp_path / "out" / "lesion_segmentation.png")
    truth = np.asarray(Image.open(sample_data / "masks" / "ISIC_0000025_segmentation.png").resize(
        (1024, 768), Image.NEAREST)) > 128
    assert mask.shape == (768, 1024) and image_metrics(truth, mask)["DC"] > 0.8
