"""Building blocks shared by SkinNet and the plain U-Net baseline."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """``kxk`` convolution (optionally dilated), batch norm, ReLU; spatial size is preserved."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1) -> None:
        padding = dilation * (kernel_size // 2)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """The plain U-Net level: two 3x3 ConvBNReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvBNReLU(in_channels, out_channels), ConvBNReLU(out_channels, out_channels))
        self.out_channels = out_channels


class UpConcat(nn.Module):
    """2x transposed-conv upsampling of the deeper features, concatenated with the skip connection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.up(deep), skip], dim=1)
