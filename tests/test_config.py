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


def test_round_trip_through_a_dict() -> None:
    config = load_config(None, ["model.width=8", "data.image_size=64"])
    assert config_from_dict(config.to_dict()) == config
