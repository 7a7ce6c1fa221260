"""Plain U-Net of the same depth and width as SkinNet: the baseline of the comparison."""

from __future__ import annotations

import torch
from torch import nn

from skinnet.networks.blocks import DoubleConv, EncoderDecoder, UpConcat


class UNet(EncoderDecoder):
    """U-Net (Ronneberger et al., 2015) with batch norm and transposed-conv upsampling.

    Args:
        in_channels: input channels.
        num_classes: output classes; returns logits.
        width: channels of the first level; level ``l`` has ``width * 2**l``.
        depth: number of 2x poolings.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        self.depth = depth
        widths = [width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for level in range(depth):
            self.encoder.append(DoubleConv(channels, widths[level]))
            channels = widths[level]
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(channels, widths[depth])
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            self.ups.append(UpConcat(widths[level + 1], widths[level]))
            self.decoder.append(DoubleConv(2 * widths[level], widths[level]))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def center(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(x)
