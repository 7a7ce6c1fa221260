"""Networks by name: ``build_model(ModelConfig)`` is the one way the rest of the package makes a model."""

from __future__ import annotations

from torch import nn

from skinnet.config import MODEL_NAMES, ModelConfig
from skinnet.networks.efficientnet_lite import VARIANTS
from skinnet.networks.pretrained_skinnet import PretrainedSkinNet
from skinnet.networks.skinnet import DenseBlock, DilatedBottleneck, SkinNet, effective_dilation_rates
from skinnet.networks.unet import UNet


def build_model(config: ModelConfig, init_encoder: bool = False) -> nn.Module:
    """Instantiate the network that ``config.name`` (and ``config.encoder``) names.

    Args:
        config: the architecture.
        init_encoder: load the pretrained encoder's ImageNet weights (``config.encoder_weights="imagenet"``),
            as training does at its start; a saved model's weights replace them anyway, so loading skips it.
    """
    if config.name == "skinnet" and config.encoder in VARIANTS:
        model = PretrainedSkinNet(config.num_classes, config.width, config.growth, config.dilations,
                                  config.encoder)
        if init_encoder and config.encoder_weights == "imagenet":
            from skinnet.networks.efficientnet_lite import imagenet_state_dict

            weights = {key: value for key, value in imagenet_state_dict(encoder=config.encoder).items()
                       if not key.startswith("classifier.")}
            model.encoder.load_state_dict(weights)
        return model
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
    "PretrainedSkinNet",
    "SkinNet",
    "UNet",
    "build_model",
    "effective_dilation_rates",
]
