"""Config loading: defaults, YAML files, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinnet.config import ConfigError, config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_shipped_configs_load() -> None:
    paper = load_config(CONFIGS / "isic2017_paper.yaml")
    assert (paper.data.image_size, paper.model.width) == (512, 32)
    assert (paper.train.batch_size, paper.train.epochs) == (8, 100)
    assert paper.model.dilations == [1, 2, 4, 8, 16, 32] and paper.train.lr == 1e-4
    cpu = load_config(CONFIGS / "cpu.yaml")
    assert cpu.data.image_size == 128 and cpu.model.width == 16


def test_overrides_are_typed_and_nested() -> None:
    config = load_config(CONFIGS / "cpu.yaml", ["train.epochs=3", "model.dilations=[1,2]", "train.lr=1e-3",
                                                "model.name=unet"])
    assert config.train.epochs == 3 and config.model.dilations == [1, 2] and config.model.name == "unet"
    assert isinstance(config.train.lr, float)


@pytest.mark.parametrize(("override", "message"), [
    (["train.epoch=3"], "unknown key 'epoch'"),
    (["train.epochs=three"], "expected an integer"),
    (["data.image_size=100"], "divisible by 2\\*\\*model.depth=16"),
    (["model.num_classes=3"], "must be 2"),
    (["train.epochs"], "expected key=value"),
])
def test_bad_values_name_the_key(override: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, override)


def test_bad_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epochs: [1, 2}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_auto_takes_the_encoders_depth_and_normalisation() -> None:
    pretrained = load_config(CONFIGS / "pretrained.yaml")  # depth, mean and std: auto
    assert pretrained.model.depth == 5
    assert pretrained.data.mean == [127.0] * 3 and pretrained.data.std == [128.0] * 3
    stored = pretrained.to_dict()  # what a model file stores: the numbers
    assert (stored["model"]["depth"], stored["data"]["mean"]) == (5, [127.0] * 3)
    assert load_config(None, ["model.depth=3", "model.depth=auto", "data.std=auto"]) == load_config(None)
    assert config_from_dict({**pretrained.to_dict(), "model": {**pretrained.to_dict()["model"], "depth": "auto"}}
                            ) == pretrained
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, ["model.width=auto"])  # only the encoder's facts take auto
    with pytest.raises(ConfigError, match="known encoders"):
        load_config(None, ["model.encoder=resnet50", "model.depth=auto"])


def test_round_trip_through_a_dict() -> None:
    config = load_config(None, ["model.width=8", "data.image_size=64"])
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=nan", r"train.lr=nan is out of range: allowed \(0, 10\]"),
    ("train.lr=.inf", r"train.lr=inf is out of range"),
    ("train.lr=0", r"train.lr=0.0 is out of range"),
    ("train.lr_factor=5", r"train.lr_factor=5.0 is out of range: allowed \(0, 1\)"),
    ("train.lr_factor=1", r"train.lr_factor=1.0 is out of range"),
    ("train.threads=-3", r"train.threads=-3 is out of range: allowed \[0, 1024\]"),
    ("train.weight_decay=-1", r"train.weight_decay=-1.0 is out of range: allowed \[0, 1\]"),
    ("data.num_workers=-1", r"data.num_workers=-1 is out of range: allowed \[0, 64\]"),
    ("model.width=4096", r"model.width=4096 is out of range: allowed \[1, 256\]"),
    ("model.depth=20", r"model.depth=20 is out of range"),
    ("data.image_size=65536", r"data.image_size=65536 is out of range: allowed \[16, 2048\]"),
    ("model.dilations=[1,0]", r"model.dilations=0 is out of range"),
    ("model.dilations=[1,2,99999]", r"model.dilations=99999 is out of range"),
    (f"model.dilations=[{','.join(['1'] * 5000)}]", "model.dilations has 5000 rates: allowed 1 to 16"),
    ("data.std=[1.0,0.0,1.0]", r"data.std=0.0 is out of range: allowed \(0, 255\]"),
    ("inference.threshold=nan", r"inference.threshold=nan is out of range: allowed \(0, 1\)"),
    ("train.n_folds=1", r"train.n_folds=1 is out of range"),
    ("model.name=resnet", "model.name='resnet': known networks are"),
])
def test_out_of_range_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(None, [override])
    assert "\n" not in str(caught.value)


def test_saved_configs_are_range_checked_too() -> None:
    values = load_config(None).to_dict()
    values["model"]["width"] = 4096
    with pytest.raises(ConfigError, match=r"model\.width=4096 is out of range"):
        config_from_dict(values)


@pytest.mark.parametrize("override", ["train.lr=nan", "train.lr_factor=5", "train.threads=-3",
                                      "train.weight_decay=-1", "data.num_workers=-1"])
def test_cli_train_refuses_out_of_range_options_with_exit_2(override: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from skinnet.cli import main

    assert main(["train", "--config", str(CONFIGS / "cpu.yaml"), "--data", str(tmp_path / "none"),
                 "--out", str(tmp_path / "run"), override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("skinnet train: error: ") and "is out of range: allowed" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("port", ["0", "70000", "-1"])
def test_cli_serve_refuses_a_port_out_of_range(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    from skinnet.cli import main

    assert main(["serve", "--port", port]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"skinnet serve: error: --port {port}: a TCP port is 1 to 65535"
