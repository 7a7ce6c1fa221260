"""Typed run configuration: dataclass defaults, YAML files that override them, ``key=value`` overrides.

A config file only names what differs from the defaults below. Unknown keys and values of the wrong type
are errors that name the file and the key, so that a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or override that cannot be applied."""


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder fixes, and so what ``auto`` means for ``model.depth``, ``data.mean`` and ``data.std``.

    Attributes:
        depth: how often it halves the resolution.
        mean: the per-channel RGB input mean (0-255 scale) its weights were trained with.
        std: the per-channel input standard deviation.
    """

    depth: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# Every encoder by name. "none" is the paper's dense-block encoder, trained from scratch: its depth, and the
# normalisation of the 2000 ISIC 2017 training images at 256x256. A pretrained encoder keeps what its
# ImageNet weights were trained with: EfficientNet-Lite0, -Lite1 and -Lite2 halve the resolution 5 times and
# read (x - 127) / 128. skinnet.networks builds each from here; a config says `auto` to take these values.
ENCODERS = {
    "none": EncoderSpec(4, (180.5, 150.8, 139.5), (39.2, 41.3, 45.0)),
    "efficientnet_lite0": EncoderSpec(5, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
    "efficientnet_lite1": EncoderSpec(5, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
    "efficientnet_lite2": EncoderSpec(5, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0)),
}
AUTO = "auto"
AUTO_KEYS = ("model.depth", "data.mean", "data.std")  # the keys that take `auto`: the encoder's own value


@dataclass
class ModelConfig:
    """Network architecture (see :mod:`skinnet.networks`)."""

    name: str = "skinnet"
    width: int = 32
    depth: int = ENCODERS["none"].depth  # `auto`: the encoder's
    growth: int | None = None
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    in_channels: int = 3
    num_classes: int = 2
    # "none": the paper's dense-block encoder; "efficientnet_lite0" (or the larger "_lite1", "_lite2"): an
    # ImageNet-pretrained EfficientNet-Lite under SkinNet's bottleneck and decoder (needs its depth and input
    # normalisation: ENCODERS, `auto`).
    encoder: str = "none"
    # Where a pretrained encoder starts when training begins: "imagenet" weights or "random" (an ablation).
    encoder_weights: str = "imagenet"


@dataclass
class DataConfig:
    """Where the pairs are, how they are resized, normalised and augmented."""

    root: str | None = None
    image_size: int = 512
    # Per-channel RGB input mean/std (0-255 scale); `auto`: the encoder's (ENCODERS).
    mean: list[float] = field(default_factory=lambda: list(ENCODERS["none"].mean))
    std: list[float] = field(default_factory=lambda: list(ENCODERS["none"].std))
    cache_dir: str | None = None
    # Colour constancy before normalisation, in training and inference: "none" or "shades_of_gray" (p = 6).
    color_constancy: str = "none"
    num_workers: int = 0
    augment: bool = True
    rotate_limit: float = 180.0
    shift_limit: float = 0.1
    scale_limit: float = 0.15
    color_shift: float = 0.1


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping of one training run."""

    epochs: int = 100
    batch_size: int = 8
    # "dice": eq. 1 of the paper; "dice_ce": eq. 1 plus the pixel cross-entropy, equal weights (nnU-Net's).
    loss: str = "dice"
    lr: float = 1e-4
    weight_decay: float = 0.0
    # "plateau": multiply by lr_factor when the monitored loss (validation, else training) has not improved
    # for lr_patience epochs; "step": multiply by lr_factor at each epoch of lr_milestones (a schedule fixed in
    # advance, e.g. the epochs at which a cross-validation fold's plateau schedule cut it); "poly": nnU-Net's
    # lr * (1 - epoch / epochs) ** poly_power. A run without validation (--fold all) should not use "plateau".
    schedule: str = "plateau"
    lr_factor: float = 0.5
    lr_patience: int = 5
    lr_milestones: list[int] = field(default_factory=list)
    poly_power: float = 0.9
    min_lr: float = 1e-6
    # Which epoch a fold keeps as best.safetensors: "best" (highest validation DC, as the paper's setting
    # does) or "last". Picking the epoch on the validation images flatters their out-of-fold score; a recipe
    # with a schedule fixed in advance ships its last epoch, and "last" measures exactly that.
    keep: str = "best"
    n_folds: int = 5
    seed: int = 42
    amp: bool = True
    # NHWC tensors for the network and its inputs: faster convolutions on tensor-core GPUs under AMP, and
    # on CPU too; the arithmetic is the same (saved weights are contiguous either way).
    channels_last: bool = False
    device: str = "auto"
    threads: int | None = None


MODEL_NAMES = ("skinnet", "unet")  # skinnet.networks.build_model builds each
POSTPROCESS_STEPS = ("largest_component", "fill_holes")  # skinnet.inference.postprocess implements each
BACKENDS = ("torch", "onnx")  # what runs the network of a skinnet.inference.segmenter.Segmenter
# What from_file, predict and serve accept: "auto" picks (skinnet.inference.segmenter.choose_runtime).
BACKEND_CHOICES = ("auto", *BACKENDS)
PRECISIONS = ("float32", "int8")  # the arithmetic of a network's forward pass
PRECISION_CHOICES = ("auto", *PRECISIONS)
ENCODER_WEIGHTS = ("imagenet", "random")
COLOR_CONSTANCY = ("none", "shades_of_gray")
LR_SCHEDULES = ("plateau", "step", "poly")
KEEP_EPOCHS = ("best", "last")
LOSSES = ("dice", "dice_ce")  # skinnet.losses.loss_function implements each
CONFIDENCE_METHODS = ("tta", "margin")


@dataclass
class InferenceConfig:
    """How probabilities become a mask; saved with a model (post-processing is chosen on out-of-fold data)."""

    threshold: float = 0.5
    # When nothing passes the threshold, keep the region around the most probable pixel (chosen on
    # out-of-fold Dice by `skinnet finalize`); see skinnet.inference.postprocess.most_probable_region.
    empty_fallback: bool = False
    postprocess: list[str] = field(default_factory=list)
    tta: bool = False
    # Per-image confidence (skinnet.clinical.confidence): "tta" (agreement of the flip views) or "margin"
    # (probability margin along the outline); outlines scoring below confidence_threshold are flagged "check
    # this outline". These defaults serve models made without a choice; benchmarks/confidence_oof.py chooses
    # both on a run's out-of-fold predictions and writes them into a model (the shipped one has its own).
    confidence: str = "tta"
    confidence_threshold: float = 0.95


@dataclass
class Config:
    """The whole configuration of a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation, converting ints to floats where a float is expected."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation in (float, str) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def _apply(section: Any, values: dict[str, Any], where: str, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(section))
    names = {f.name for f in dataclasses.fields(section)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(names))})")
        current = getattr(section, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a mapping, got {value!r}")
            _apply(current, value, f"{where}.{key}", f"{prefix}{key}.")
        elif value == AUTO and f"{prefix}{key}" in AUTO_KEYS:
            setattr(section, key, AUTO)  # resolved by _resolve_auto once every key is set
        else:
            setattr(section, key, _coerce(value, hints[key], f"{where}.{key}"))


def _resolve_auto(config: Config) -> None:
    """Replace each ``auto`` of :data:`AUTO_KEYS` by the encoder's value: a loaded config, and so every
    stored one, holds numbers only."""
    for key in AUTO_KEYS:
        section, name = key.split(".")
        if getattr(getattr(config, section), name) == AUTO:
            value = getattr(_encoder_spec(config), name)
            setattr(getattr(config, section), name, list(value) if isinstance(value, tuple) else value)


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=3", "model.dilations=[1,2]"]`` into a nested dict (values parsed as YAML)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=10")
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return nested


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a :class:`Config` from the defaults, an optional YAML file and ``key=value`` overrides.

    Args:
        path: YAML file whose keys override the defaults; ``None`` for the defaults alone.
        overrides: dotted ``section.key=value`` strings applied after the file.

    Raises:
        ConfigError: the file is missing or malformed, or a key or value is invalid.
    """
    config = Config()
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config ({err.strerror})") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (model, data, train, inference)")
        _apply(config, values, str(path))
    if overrides:
        _apply(config, parse_overrides(overrides), "override")
    _resolve_auto(config)
    validate(config)
    return config


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a :class:`Config` saved with :meth:`Config.to_dict` (e.g. inside a checkpoint)."""
    config = Config()
    _apply(config, values, "saved config")
    _resolve_auto(config)
    validate(config)
    return config


# The range of every numeric field, as an interval ("[" closed, "(" open). Values outside it, NaN and infinity are
# refused before anything is allocated; a model file's metadata goes through the same check, so a file cannot
# ask for a width-4096 network or a 65536 px input. The limits sit far above any sensible run (the paper:
# width 32, depth 4, 6 rates, 512 px); what a whole network may cost is bounded apart, in skinnet.networks.budget.
RANGES = {
    "model.width": "[1, 256]", "model.depth": "[1, 7]", "model.growth": "[1, 256]", "model.in_channels": "[1, 4]",
    "model.dilations": "[1, 512]",
    "data.image_size": "[16, 2048]", "data.mean": "[0, 255]", "data.std": "(0, 255]",
    "data.num_workers": "[0, 64]",
    "data.rotate_limit": "[0, 180]", "data.shift_limit": "[0, 1]", "data.scale_limit": "[0, 1)",
    "data.color_shift": "[0, 1]",
    "train.epochs": "[1, 100000]", "train.batch_size": "[1, 4096]", "train.lr": "(0, 10]",
    "train.weight_decay": "[0, 1]", "train.lr_factor": "(0, 1)", "train.lr_patience": "[0, 10000]",
    "train.lr_milestones": "[1, 100000]", "train.poly_power": "(0, 100]", "train.min_lr": "[0, 10]",
    "train.n_folds": "[2, 100]", "train.seed": "[0, 4294967295]", "train.threads": "[0, 1024]",
    "inference.threshold": "(0, 1)", "inference.confidence_threshold": "[0, 1]",
}
MAX_DILATIONS = 16


def _inside(value: float, interval: str) -> bool:
    """Whether a finite ``value`` lies in an interval written like ``"(0, 1]"``."""
    low, high = (float(part) for part in interval[1:-1].split(","))
    above = value > low if interval[0] == "(" else value >= low
    below = value < high if interval[-1] == ")" else value <= high
    return above and below


def _check_ranges(config: Config) -> None:
    """Every numeric field finite and inside its :data:`RANGES` interval (each value of a list)."""
    for key, interval in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not (math.isfinite(item) and _inside(item, interval)):
                raise ConfigError(f"{key}={item!r} is out of range: allowed {interval}")
    if not 1 <= len(config.model.dilations) <= MAX_DILATIONS:
        raise ConfigError(f"model.dilations has {len(config.model.dilations)} rates: allowed 1 to {MAX_DILATIONS}")


def validate(config: Config) -> None:
    """Reject values that would fail later, deep inside training."""
    _check_ranges(config)
    if config.model.name not in MODEL_NAMES:
        raise ConfigError(f"model.name={config.model.name!r}: known networks are {MODEL_NAMES}")
    step = 2 ** config.model.depth
    if config.data.image_size % step:
        raise ConfigError(
            f"data.image_size={config.data.image_size} must be divisible by 2**model.depth={step}"
        )
    if config.model.num_classes != 2:
        raise ConfigError("model.num_classes must be 2 (background, lesion) for lesion segmentation")
    _validate_encoder(config)
    if config.train.keep not in KEEP_EPOCHS:
        raise ConfigError(f"train.keep={config.train.keep!r}: choose one of {KEEP_EPOCHS}")
    if config.train.loss not in LOSSES:
        raise ConfigError(f"train.loss={config.train.loss!r}: choose one of {LOSSES}")
    if config.train.schedule not in LR_SCHEDULES:
        raise ConfigError(f"train.schedule={config.train.schedule!r}: known schedules are {LR_SCHEDULES}")
    if config.train.schedule == "step" and not config.train.lr_milestones:
        raise ConfigError("train.schedule=step needs train.lr_milestones, e.g. [18, 26]")
    if config.data.color_constancy not in COLOR_CONSTANCY:
        raise ConfigError(f"data.color_constancy={config.data.color_constancy!r}: choose one of {COLOR_CONSTANCY}")
    check_postprocess(config.inference.postprocess, "inference.postprocess")
    if config.inference.confidence not in CONFIDENCE_METHODS:
        raise ConfigError(f"inference.confidence={config.inference.confidence!r}: "
                          f"choose one of {CONFIDENCE_METHODS}")
    if len(config.data.mean) != config.model.in_channels or len(config.data.std) != config.model.in_channels:
        raise ConfigError("data.mean and data.std need one value per input channel")


def check_postprocess(steps: Sequence[str], where: str) -> None:
    """Refuse a post-processing step that :mod:`skinnet.inference.postprocess` does not implement.

    Args:
        steps: the step names, from a config or given to a predictor.
        where: what gave them, for the message.

    Raises:
        ConfigError: naming the unknown steps and the known ones.
    """
    unknown = sorted(set(steps) - set(POSTPROCESS_STEPS))
    if unknown:
        raise ConfigError(f"{where}: unknown post-processing {unknown}; known: {', '.join(POSTPROCESS_STEPS)}")


def _encoder_spec(config: Config) -> EncoderSpec:
    if config.model.encoder not in ENCODERS:
        raise ConfigError(f"model.encoder={config.model.encoder!r}: known encoders are {tuple(ENCODERS)}")
    return ENCODERS[config.model.encoder]


def _validate_encoder(config: Config) -> None:
    """A pretrained encoder fixes the network's depth, input channels and input normalisation."""
    model = config.model
    spec = _encoder_spec(config)
    if model.encoder_weights not in ENCODER_WEIGHTS:
        raise ConfigError(f"model.encoder_weights={model.encoder_weights!r}: choose one of {ENCODER_WEIGHTS}")
    if model.encoder == "none":
        return
    depth, mean, std = spec.depth, spec.mean, spec.std
    if model.name != "skinnet":
        raise ConfigError(f"model.encoder={model.encoder} is a SkinNet option: set model.name=skinnet")
    if model.depth != depth or model.in_channels != 3:
        raise ConfigError(f"model.encoder={model.encoder} halves the resolution {depth} times and reads "
                          f"RGB: set model.depth={depth} (or auto) and model.in_channels=3")
    if list(config.data.mean) != list(mean) or list(config.data.std) != list(std):
        raise ConfigError(f"model.encoder={model.encoder} expects the inputs its ImageNet weights were trained "
                          f"on: set data.mean={list(mean)} and data.std={list(std)} (or auto)")
