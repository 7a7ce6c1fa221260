"""Fixtures of the web app tests: a small real model file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SAMPLE_IMAGES = sorted((Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def app_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised SkinNet (width 4, 64 px) saved as a real model file.

    Random weights give nearly constant probabilities, so the saved threshold is their median over a few
    sample images: the masks then cover part of each image in ragged pieces, which checks the measurements
    and the overlay better than all-lesion or empty masks would.
    """
    import torch

    from skinnet.config import load_config
    from skinnet.data.io import read_image
    from skinnet.inference.segmenter import Segmenter
    from skinnet.networks import build_model
    from skinnet.networks.files import save_weights

    torch.manual_seed(0)
    config = load_config(None, ["model.width=4", "data.image_size=64"])
    model = build_model(config.model).eval()
    segmenter = Segmenter(model, config, torch.device("cpu"))
    probabilities = [segmenter.predict_proba(read_image(path)).ravel() for path in SAMPLE_IMAGES[:6]]
    config.inference.threshold = float(np.median(np.concatenate(probabilities)))
    path = tmp_path_factory.mktemp("app_model") / "random.safetensors"
    save_weights(path, model, config)
    return path


@pytest.fixture(scope="session")
def app_segmenter(app_model: Path):
    from skinnet.inference.segmenter import Segmenter

    return Segmenter.from_file(app_model, device="cpu")
