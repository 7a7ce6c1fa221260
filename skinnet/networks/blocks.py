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


def check_input_size(x: torch.Tensor, depth: int) -> None:
    """Raise a clear error for inputs the encoder cannot pool ``depth`` times without losing pixels."""
    step = 2**depth
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return
    height, width = x.shape[-2:]
    if height % step or width % step:
        raise ValueError(f"input size {height}x{width} must be divisible by 2**depth={step}")


class EncoderDecoder(nn.Module):
    """The U-shaped forward pass shared by SkinNet and U-Net; subclasses build the blocks and :meth:`center`.

    Subclasses set ``depth``, ``encoder``, ``pool``, ``ups``, ``decoder`` (deepest level first) and ``head``.
    """

    depth: int
    encoder: nn.ModuleList
    pool: nn.Module
    ups: nn.ModuleList
    decoder: nn.ModuleList
    head: nn.Module

    def center(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck, at ``1 / 2**depth`` of the input size."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.depth)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.center(x)
        for up, block, skip in zip(self.ups, self.decoder, reversed(skips), strict=True):
            x = block(up(x, skip))
        return self.head(x)


class UpConcat(nn.Module):
    """2x transposed-conv upsampling of the deeper features, concatenated with the skip connection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.up(deep), skip], dim=1)
