"""SkinNet's dilated bottleneck and dense-block decoder on an ImageNet-pretrained EfficientNet-Lite encoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from skinnet.config import ENCODERS
from skinnet.networks.blocks import ConvBNReLU, UpConcat, check_input_size
from skinnet.networks.efficientnet_lite import HEAD_CHANNELS, EfficientNetLite
from skinnet.networks.skinnet import DenseBlock, DilatedBottleneck

ENCODER_DEPTH = ENCODERS["efficientnet_lite0"].depth  # every Lite halves 5 times: inputs divisible by 32


class PretrainedSkinNet(nn.Module):
    """EfficientNet-Lite encoder, SkinNet's dilated bottleneck on its deepest features, dense-block decoder.

    The decoder has one dense block per encoder stride (16, 8, 4, 2), each fed the upsampled deeper map and
    the encoder's skip at that stride. The logits are predicted at stride 2, where the encoder's first
    features are, and upsampled bilinearly to the input size.

    Args:
        num_classes: output classes (2); the network returns logits.
        width: decoder channels at stride 2; the level at stride ``2**(l+1)`` has ``width * 2**l``, and the
            bottleneck ``width * 16``.
        growth: channels per dense layer at stride 2 (doubled per level); default ``width``.
        dilations: dilation rates of the bottleneck cascade (at 256 px the bottleneck is 8x8: rates 1, 2, 4).
        encoder: ``efficientnet_lite0``, ``_lite1`` or ``_lite2`` (all halve the resolution 5 times).
    """

    depth = ENCODER_DEPTH

    def __init__(self, num_classes: int = 2, width: int = 16, growth: int | None = None,
                 dilations: Sequence[int] = (1, 2, 4), encoder: str = "efficientnet_lite0") -> None:
        super().__init__()
        growth = growth or width
        self.encoder = EfficientNetLite(encoder)
        skip_channels = self.encoder.skip_channels
        levels = len(skip_channels)
        widths = [width * 2**level for level in range(levels + 1)]
        self.bottleneck_in = ConvBNReLU(HEAD_CHANNELS, widths[levels], kernel_size=1)
        self.bottleneck = DilatedBottleneck(widths[levels], dilations)
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(levels)):
            self.ups.append(UpConcat(widths[level + 1], widths[level]))
            self.decoder.append(DenseBlock(widths[level] + skip_channels[level], widths[level],
                                           growth * 2**level))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.depth)
        *skips, deepest = self.encoder.features(x)
        x = self.bottleneck(self.bottleneck_in(deepest))
        for up, block, skip in zip(self.ups, self.decoder, reversed(skips), strict=True):
            x = block(up(x, skip))
        return F.interpolate(self.head(x), scale_factor=2.0, mode="bilinear", align_corners=False)
