"""Hostile and damaged model files: refused in one line, by name, before their network is built."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from skinnet.cli import main
from skinnet.config import ConfigError, load_config
from skinnet.inference.segmenter import Segmenter
from skinnet.networks.budget import MAX_ACTIVATION_BYTES, MAX_PARAMETERS, check_budget, network_cost
from skinnet.networks.files import ModelFileError, check_model_file, is_safetensors, load_model

SAMPLE = sorted((Path(__file__).resolve().parents[2] / "skinnet" / "sample_data" / "images").glob("*.jpg"))[0]


def hostile(tmp_path: Path, tiny_model: Path, name: str = "hostile.safetensors",
            tensors: dict[str, torch.Tensor] | None = None, **changes: dict) -> Path:
    """The tiny model's file with its config's sections changed (e.g. ``model={"width": 4096}``)."""
    from safetensors import safe_open

    with safe_open(str(tiny_model), framework="pt") as handle:
        config = json.loads(handle.metadata()["config"])
    for section, values in changes.items():
        config[section].update(values)
    save_file(tensors if tensors is not None else load_file(str(tiny_model)), path := tmp_path / name,
              metadata={"format": "skinnet", "config": json.dumps(config)})
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"model": {"width": 4096}}, "model.width=4096 is out of range"),
    ({"model": {"dilations": [1] * 5000}}, "model.dilations has 5000 rates"),
    ({"data": {"image_size": 65536}}, "data.image_size=65536 is out of range"),
    ({"model": {"width": 200, "depth": 7}, "data": {"image_size": 256}},
     f"would have .* parameters, more than the limit of {MAX_PARAMETERS:,}"),
    ({"model": {"width": 64}, "data": {"image_size": 2048}}, "GB of activations per image, more than the limit"),
])
def test_hostile_configs_are_refused_before_building(tmp_path: Path, tiny_model: Path, changes: dict, message: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile(tmp_path, tiny_model, **changes)
    built: list[object] = []
    monkeypatch.setattr("skinnet.networks.files.build_model", lambda *a, **k: built.append(a))
    with pytest.raises(ModelFileError, match=message) as caught:
        Segmenter.from_file(path, device="cpu")
    assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert built == []


def test_cli_predict_with_a_hostile_model_exits_2_in_one_line(tmp_path: Path, tiny_model: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile(tmp_path, tiny_model, model={"width": 4096})
    assert main(["predict", str(SAMPLE), "--out", str(tmp_path / "out"), "--model", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"skinnet predict: error: {path}: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_tensors_that_do_not_fit_the_config_are_refused_before_building(tmp_path: Path, tiny_model: Path) -> None:
    tensors = load_file(str(tiny_model))
    name = next(key for key, value in tensors.items() if value.ndim == 4)
    tensors[name] = torch.zeros(1, 1, 1, 1)
    path = hostile(tmp_path, tiny_model, tensors=tensors)
    with pytest.raises(ModelFileError, match=rf"weights do not match the saved architecture: 1 of the wrong shape "
                                             rf"\(e.g. {name}: \[1, 1, 1, 1\]"):
        check_model_file(path)
    del tensors[name]
    path = hostile(tmp_path, tiny_model, tensors=tensors)
    with pytest.raises(ModelFileError, match=rf"1 missing \(e.g. {name}\)"):
        check_model_file(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path: Path, tiny_model: Path, bad: float,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    tensors = load_file(str(tiny_model))
    name = next(key for key, value in tensors.items() if value.ndim == 4)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[:3] = bad
    path = hostile(tmp_path, tiny_model, tensors=tensors)
    with pytest.raises(ModelFileError, match=rf"{path}: 3 NaN or infinite values in {name}"):
        load_model(path)
    assert main(["predict", str(SAMPLE), "--out", str(tmp_path / "out"), "--model", str(path)]) == 2
    assert "NaN or infinite values" in capsys.readouterr().err


def test_safetensors_without_its_suffix_is_named_by_content(tmp_path: Path, tiny_model: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(tiny_model, renamed := tmp_path / "model.bin")
    assert is_safetensors(renamed) and not is_safetensors(SAMPLE)
    assert main(["predict", str(SAMPLE), "--out", str(tmp_path / "out"), "--model", str(renamed)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"skinnet predict: error: {renamed}: a safetensors file (by its content) without the "
                   ".safetensors suffix; rename it to model.safetensors")
    assert "pickled" not in err


def test_good_models_pass_and_their_cost_is_known(tiny_model: Path) -> None:
    config = check_model_file(tiny_model)
    assert config is not None and config.model.width == 4
    model, _ = load_model(tiny_model)
    cost = network_cost(config)
    assert cost.parameters == sum(t.numel() for t in model.state_dict().values())
    paper = network_cost(load_config(Path(__file__).resolve().parents[2] / "configs" / "isic2017_paper.yaml"))
    assert 20e6 < paper.parameters < 25e6  # the paper's SkinNet at width 32
    assert 1e9 < paper.activation_bytes < MAX_ACTIVATION_BYTES  # counted exactly on the meta device


def test_training_refuses_an_over_budget_network_before_touching_the_disk(tmp_path: Path) -> None:
    from skinnet.training.trainer import train_fold

    config = load_config(None, ["model.width=128", "model.depth=7", "data.image_size=256"])
    with pytest.raises(ConfigError, match=r"config: the network .* more than the limit"):
        train_fold(config, tmp_path / "data", tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError):
        check_budget(config, "config")


def test_an_over_budget_checkpoint_is_refused_from_its_memory_map(tmp_path: Path, tiny_model: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors import safe_open

    with safe_open(str(tiny_model), framework="pt") as handle:
        config = json.loads(handle.metadata()["config"])
    config["model"].update(width=200, depth=7)
    config["data"]["image_size"] = 256
    torch.save({"config": config, "model": load_file(str(tiny_model))}, path := tmp_path / "best.pt")
    built: list[object] = []
    monkeypatch.setattr("skinnet.networks.files.build_model", lambda *a, **k: built.append(a))
    with pytest.raises(ModelFileError, match=rf"{path}: saved config: the network \(skinnet width 200, depth 7"):
        load_model(path)
    assert built == []


@pytest.mark.parametrize("name, content, words", [
    ("x.jpg", SAMPLE.read_bytes(), "not a model file (a JPEG image, by its content)"),
    ("x.pt", SAMPLE.read_bytes(), "not a model file (a JPEG image, by its content)"),
    ("notes.pt", b"weights: none\n", "neither safetensors, a PyTorch checkpoint nor ONNX"),
    ("empty.pt", b"", "not a model file (an empty file"),
    ("damaged.pt", b"\x80\x02garbage", "not a readable checkpoint, truncated or corrupt (the unpickler stopped"),
])
def test_a_file_that_is_no_model_is_named_without_torch_advice(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               name: str, content: bytes, words: str) -> None:
    (path := tmp_path / name).write_bytes(content)
    with pytest.raises(ModelFileError) as caught:
        Segmenter.from_file(path, device="cpu")
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message, message
    assert "weights_only" not in message and "\n" not in message
    assert main(["predict", str(SAMPLE), "--out", str(tmp_path / "out"), "--model", str(path)]) == 2
    [line] = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert words in line and "weights_only" not in line
