"""int8 quantisation: `skinnet export --int8` writes a calibrated int8 file whose masks agree with float32's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from skinnet.cli import main
from skinnet.data.io import read_image
from skinnet.inference.onnx import PRECISION_KEY, OnnxBackend, export_onnx
from skinnet.inference.quantize import calibration_images, quantize_onnx
from skinnet.inference.segmenter import Segmenter
from skinnet.metrics import image_metrics
from skinnet.networks.files import ModelFileError, load_model
from skinnet.weights import default_model_path


@pytest.mark.skipif(default_model_path() is None, reason="no model file in skinnet/weights/")
def test_int8_export_of_the_shipped_model_agrees_with_float32(tmp_path: Path, sample_data: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    images = sorted((sample_data / "images").glob("*.jpg"))
    (calibration := tmp_path / "calibration").mkdir()
    for path in images[:8]:
        (calibration / path.name).write_bytes(path.read_bytes())
    (calibration / "broken.jpg").write_bytes(b"not a JPEG")
    int8_file, float32_file = tmp_path / "int8.onnx", tmp_path / "float32.onnx"
    assert main(["export", "--onnx", str(float32_file)]) == 0
    assert main(["export", "--onnx", str(int8_file), "--int8", "--calibration", str(calibration),
                 "--calibration-images", "9"]) == 0
    captured = capsys.readouterr()
    assert f"{int8_file} (int8, calibrated on 8 images)" in captured.out
    assert f"skipped calibration image {calibration / 'broken.jpg'}: " in captured.err
    # int8 weights: a quarter of the float32 file, and a different graph
    assert int8_file.stat().st_size < 0.4 * float32_file.stat().st_size
    int8, float32 = Segmenter.from_file(int8_file), Segmenter.from_file(float32_file)
    assert (int8.describe()["precision"], float32.describe()["precision"]) == ("int8", "float32")
    assert int8.config == float32.config
    # Images that did not calibrate it: masks nearly identical to float32's, probabilities not identical.
    largest_change, agreement = 0.0, []
    for path in images[8:20]:
        image = read_image(path)
        a, b = int8.predict_proba(image), float32.predict_proba(image)
        largest_change = max(largest_change, float(np.abs(a - b).max()))
        agreement.append(image_metrics(float32.to_mask(b), int8.to_mask(a))["DC"])
    assert min(agreement) > 0.9 and np.mean(agreement) > 0.98
    assert largest_change > 1e-3


def test_quantising_needs_calibration_images(tiny_model: Path, tmp_path: Path) -> None:
    model, config = load_model(tiny_model)
    source = export_onnx(model, config, tmp_path / "float32.onnx")
    with pytest.raises(ValueError, match="no calibration images"):
        quantize_onnx(source, tmp_path / "int8.onnx", [])
    assert not (tmp_path / "int8.onnx").exists()


def test_calibration_draw_is_seeded_and_bounded(sample_data: Path) -> None:
    first, problems = calibration_images([sample_data / "images"], count=5, seed=3)
    again, _ = calibration_images([sample_data / "images"], count=5, seed=3)
    other, _ = calibration_images([sample_data / "images"], count=5, seed=4)
    assert len(first) == 5 and not problems
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_an_unknown_precision_in_the_metadata_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    model, config = load_model(tiny_model)
    path = export_onnx(model, config, tmp_path / "model.onnx")
    graph = onnx.load(str(path))
    entry = graph.metadata_props.add()
    entry.key, entry.value = PRECISION_KEY, "int4"
    onnx.save(graph, str(path))
    with pytest.raises(ModelFileError, match=f"unknown {PRECISION_KEY} 'int4'"):
        OnnxBackend(path)


def test_int8_precision_quantises_a_weights_file_once_then_reuses_it(
        tiny_model: Path, sample_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import skinnet.inference.quantize as quantize

    monkeypatch.setenv("SKINNET_CACHE", str(tmp_path / "cache"))
    int8 = Segmenter.from_file(tiny_model, backend="onnx", precision="int8")
    float32 = Segmenter.from_file(tiny_model, backend="onnx")
    assert (int8.describe()["precision"], float32.describe()["precision"]) == ("int8", "float32")
    assert int8.model_files == [tiny_model]  # the weights file is what the manifest and run key name
    int8_files = sorted((tmp_path / "cache" / "onnx").glob("best-*-int8.onnx"))
    assert len(int8_files) == 1 and len(list((tmp_path / "cache" / "onnx").glob("best-*.onnx"))) == 2
    # the same weights again: the cached file, not a second quantisation
    monkeypatch.setattr(quantize, "quantize_onnx", lambda *args: pytest.fail("quantised twice"))
    again = Segmenter.from_file(tiny_model, backend="onnx", precision="int8")
    image = read_image(sorted((sample_data / "images").glob("*.jpg"))[0])
    assert np.array_equal(again.predict_proba(image), int8.predict_proba(image))
    # the bundled calibration images are part of the key: another set would not reuse the file
    monkeypatch.setattr(quantize, "find_images", lambda inputs: [Path("other.jpg")])
    assert quantize.int8_path_for(tiny_model) != int8_files[0]


def test_int8_needs_onnx_runtime_and_an_onnx_file_keeps_its_precision(tiny_model: Path, tmp_path: Path) -> None:
    from skinnet.config import ConfigError

    with pytest.raises(ConfigError, match="int8 runs on ONNX Runtime"):
        Segmenter.from_file(tiny_model, backend="torch", precision="int8")
    with pytest.raises(ConfigError, match="unknown precision 'int4'"):
        Segmenter.from_file(tiny_model, backend="onnx", precision="int4")
    model, config = load_model(tiny_model)
    float32_file = export_onnx(model, config, tmp_path / "model.onnx")
    with pytest.raises(ConfigError, match=f"{float32_file}: a float32 ONNX file, not int8"):
        Segmenter.from_file(float32_file, precision="int8")
    assert Segmenter.from_file(float32_file, precision="float32").describe()["precision"] == "float32"
