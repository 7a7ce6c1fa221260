"""Networks by name: ``build_model(ModelConfig)`` is the one way the rest of the package makes a model."""

from __future__ import annotations

from torch import nn

from skinnet.config import ModelConfig
from skinnet.networks.skinnet import DenseBlock, DilatedBottleneck, SkinNet, effective_dilation_rates
from skinnet.networks.unet import UNet

MODEL_NAMES = ("skinnet", "unet")


def build_model(config: ModelConfig) -> nn.Module:
    """Instantiate the network that ``config.name`` names ("skinnet" or "unet")."""
    if config.name == "skinnet":
        return SkinNet(
            in_channels=config.in_channels,
            num_classes=config.num_classes,
            width=config.width,
            depth=config.depth,
            growth=config.growth,
            dilations=config.dilations,
        )
    if config.name == "unet":
        return UNet(config.in_channels, config.num_classes, config.width, config.depth)
    raise ValueError(f"unknown model.name {config.name!r}; choose one of {', '.join(MODEL_NAMES)}")


__all__ = [
    "MODEL_NAMES",
    "DenseBlock",
    "DilatedBottleneck",
    "SkinNet",
    "UNet",
    "build_model",
    "effective_dilation_rates",
]
