"""The Segmenter: any image size in, same size out; flip TTA; post-processing saved with the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skinnet.config import ConfigError
from skinnet.data.io import read_image
from skinnet.devices import resolve_device
from skinnet.inference.segmenter import Segmenter
from skinnet.networks.files import load_model, save_weights


def test_masks_have_each_inputs_size(tiny_model: Path, sample_data: Path) -> None:
    image = read_image(sample_data / "images" / "ISIC_0000025.jpg")
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    for shape in [(768, 1024), (200, 300), (256, 256), (37, 53)]:
        resized = np.asarray(__import__("cv2").resize(image, shape[::-1]))
        mask = segmenter.predict(resized)
        assert mask.shape == shape and mask.dtype == bool


def test_flip_tta_is_equivariant_to_flips(tiny_model: Path, sample_data: Path) -> None:
    image = read_image(sample_data / "images" / "ISIC_0000321.jpg")
    plain = Segmenter.from_file(tiny_model, device="cpu")
    tta = Segmenter.from_file(tiny_model, device="cpu", tta=True)
    p, p_flipped = tta.predict_proba_batch([image, np.ascontiguousarray(image[:, ::-1])])
    assert np.abs(p[:, ::-1] - p_flipped).max() < 1e-5  # averaging over the flip group makes it exact
    assert np.abs(p - plain.predict_proba(image)).max() > 1e-4  # and TTA really changed something


def test_postprocessing_saved_with_the_model_is_applied(tiny_model: Path, tmp_path: Path,
                                                       sample_data: Path) -> None:
    model, config = load_model(tiny_model)
    config.inference.postprocess = ["largest_component", "fill_holes"]
    save_weights(tmp_path / "pp.safetensors", model, config, half=True)
    segmenter = Segmenter.from_file(tmp_path / "pp.safetensors", device="cpu")
    assert segmenter.postprocess == ["largest_component", "fill_holes"]
    assert Segmenter.from_file(tmp_path / "pp.safetensors", postprocess=[]).postprocess == []
    from scipy import ndimage

    for path in sorted((sample_data / "images").glob("*.jpg"))[:5]:
        _, count = ndimage.label(segmenter.predict(read_image(path)), np.ones((3, 3)))
        assert count <= 1
    with pytest.raises(ConfigError, match="unknown post-processing"):
        Segmenter.from_file(tiny_model, postprocess=["smooth"])


def test_half_precision_file_is_smaller_and_close(tiny_model: Path, tmp_path: Path, sample_data: Path) -> None:
    model, config = load_model(tiny_model)
    save_weights(tmp_path / "half.safetensors", model, config, half=True)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * tiny_model.stat().st_size
    image = read_image(sample_data / "images" / "ISIC_0000025.jpg")
    full = Segmenter.from_file(tiny_model, device="cpu").predict_proba(image)
    half = Segmenter.from_file(tmp_path / "half.safetensors", device="cpu").predict_proba(image)
    assert np.abs(full - half).max() < 1e-2


def test_half_precision_keeps_batch_norm_statistics_exact(tiny_model: Path, tmp_path: Path) -> None:
    model, config = load_model(tiny_model)
    norm = next(m for m in model.modules() if isinstance(m, __import__("torch").nn.BatchNorm2d))
    norm.running_var.fill_(1e6)  # beyond float16's range: as float16 it would load as inf
    save_weights(tmp_path / "half.safetensors", model, config, half=True)
    loaded, _ = load_model(tmp_path / "half.safetensors")
    reloaded = next(m for m in loaded.modules() if isinstance(m, __import__("torch").nn.BatchNorm2d))
    assert bool((reloaded.running_var == 1e6).all())


@pytest.mark.parametrize("name", ["gpu0", "cuda:x"])
def test_a_misspelled_device_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="not a device name"):
        resolve_device(name)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA: nothing to refuse")
def test_asking_for_cuda_without_it_says_so_instead_of_a_torch_assertion(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU is usable here"):
        Segmenter.from_file(tiny_model, device="cuda")


@pytest.mark.parametrize(("model", "backend", "precision", "expected"), [
    ("shipped", "auto", "auto", ("onnx", "int8")),  # the default on a CPU: the packaged int8 copy
    ("shipped", None, None, ("onnx", "int8")),
    ("shipped", "torch", "auto", ("torch", "float32")),
    ("shipped", "onnx", "auto", ("onnx", "float32")),
    ("shipped", "auto", "float32", ("torch", "float32")),
    ("shipped", "auto", "int8", ("onnx", "int8")),
    ("other.safetensors", "auto", "auto", ("torch", "float32")),  # no measured int8 copy: float32
    ("other.safetensors", "auto", "int8", ("onnx", "int8")),
    ("other.onnx", "auto", "auto", ("onnx", None)),  # the file's own precision
    (None, "auto", "auto", ("torch", "float32")),  # several files (an ensemble)
])
def test_auto_runs_the_packaged_int8_copy_of_the_shipped_model_on_a_cpu(
        model: str | None, backend: str | None, precision: str | None, expected: tuple[str, str | None]) -> None:
    from skinnet.inference.segmenter import choose_runtime
    from skinnet.weights import default_model_path, packaged_int8_path

    if default_model_path() is None or packaged_int8_path() is None:
        pytest.skip("no shipped model and int8 copy in skinnet/weights/")
    path = default_model_path() if model == "shipped" else model
    assert tuple(choose_runtime(path, backend, precision, "cpu"))[:2] == expected


def test_auto_keeps_torch_float32_on_a_gpu_and_refuses_what_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import skinnet.inference.segmenter as segmenter
    from skinnet.weights import SHIPPED_MODEL, packaged_int8_path

    if packaged_int8_path() is None:
        pytest.skip("no int8 copy in skinnet/weights/")
    monkeypatch.setattr(segmenter, "resolve_device", lambda name: torch.device("cuda"))
    assert segmenter.choose_runtime(SHIPPED_MODEL) == ("torch", "float32", "")
    with pytest.raises(ConfigError, match=r"^int8 runs on ONNX Runtime: use the onnx backend \(--backend onnx\)$"):
        segmenter.choose_runtime(SHIPPED_MODEL, "torch", "int8")
    with pytest.raises(ConfigError, match=r"^unknown backend 'tensorrt'; choose one of auto, torch, onnx$"):
        segmenter.choose_runtime(SHIPPED_MODEL, "tensorrt")
