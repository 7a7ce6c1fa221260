"""ONNX export and the ONNX Runtime backend agree with PyTorch on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from skinnet.data.cache import resize_image
from skinnet.data.io import read_image
from skinnet.data.normalize import normalize
from skinnet.inference.onnx import OnnxBackend, export_onnx
from skinnet.inference.segmenter import Segmenter
from skinnet.networks.files import ModelFileError, load_model


@pytest.fixture(scope="module")
def exported(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, config = load_model(tiny_model)
    return export_onnx(model, config, tmp_path_factory.mktemp("onnx") / "model.onnx")


def real_batch(sample_data: Path, size: int, count: int, config) -> np.ndarray:
    paths = sorted((sample_data / "images").glob("*.jpg"))[:count]
    return normalize(np.stack([resize_image(read_image(p), size) for p in paths]), config.data.mean,
                     config.data.std)


@pytest.mark.parametrize(("size", "count"), [(64, 1), (64, 5), (128, 3), (96, 2)])
def test_onnx_probabilities_match_pytorch(exported: Path, tiny_model: Path, sample_data: Path,
                                          size: int, count: int) -> None:
    model, config = load_model(tiny_model)
    batch = real_batch(sample_data, size, count, config)
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(batch)), 1)[:, 1].numpy()
    got = OnnxBackend(exported, threads=1)(batch)
    assert got.shape == (count, size, size)  # dynamic batch and spatial size
    assert np.abs(got - expected).max() < 1e-4
    assert expected.std() > 1e-3  # a trained, non-constant output: the check has teeth


def test_onnx_file_carries_the_config(exported: Path, tiny_model: Path) -> None:
    _, config = load_model(tiny_model)
    assert OnnxBackend(exported).config == config
    onnx.checker.check_model(onnx.load(str(exported)))


def test_segmenter_backends_give_the_same_masks(exported: Path, tiny_model: Path, sample_data: Path,
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SKINNET_CACHE", str(tmp_path))
    images = [read_image(p) for p in sorted((sample_data / "images").glob("*.jpg"))[:4]]
    torch_probs = Segmenter.from_file(tiny_model, device="cpu").predict_proba_batch(images)
    for source in (exported, tiny_model):  # an .onnx file, and weights exported on the fly
        onnx_probs = Segmenter.from_file(source, backend="onnx").predict_proba_batch(images)
        for a, b in zip(torch_probs, onnx_probs, strict=True):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    assert list((tmp_path / "onnx").glob("*.onnx"))  # the on-the-fly export was cached


def test_onnx_without_skinnet_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.onnx"
    torch.onnx.export(torch.nn.Identity(), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(ModelFileError, match="no skinnet_config metadata"):
        OnnxBackend(path)


def test_the_pretrained_encoder_network_exports_with_parity(tiny_pretrained_run: Path, sample_data: Path,
                                                            tmp_path: Path) -> None:
    model, config = load_model(tiny_pretrained_run / "fold_0" / "best.safetensors")
    exported = export_onnx(model, config, tmp_path / "pretrained.onnx")
    session = OnnxBackend(exported, threads=1)
    for size, count in ((64, 2), (96, 1), (128, 3)):  # sizes the encoder's stride 32 divides
        batch = real_batch(sample_data, size, count, config)
        with torch.no_grad():
            expected = torch.softmax(model(torch.from_numpy(batch)), 1)[:, 1].numpy()
        got = session(batch)
        assert got.shape == (count, size, size)
        assert np.abs(got - expected).max() < 1e-4
        assert expected.std() > 1e-3
