"""SkinNet (Vesal, Ravikumar, Maier, 2018): a U-Net whose levels are dense blocks, with a dilated bottleneck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from skinnet.networks.blocks import ConvBNReLU, EncoderDecoder, UpConcat


class DenseBlock(nn.Module):
    """Densely connected convolutions: layer ``i`` sees the block input and the outputs of layers ``< i``.

    The concatenation of the input and every layer's output is fused back to ``out_channels`` by a 1x1
    ConvBNReLU, so that the block can stand wherever a U-Net level's two convolutions stood.

    Args:
        in_channels: channels of the block input.
        out_channels: channels of the block output.
        growth: channels produced by each 3x3 layer.
        n_layers: number of 3x3 layers (2 in the paper).
    """

    def __init__(self, in_channels: int, out_channels: int, growth: int, n_layers: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ConvBNReLU(in_channels + i * growth, growth) for i in range(n_layers)
        )
        self.fuse = ConvBNReLU(in_channels + n_layers * growth, out_channels, kernel_size=1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.fuse(torch.cat(features, dim=1))


class DilatedBottleneck(nn.Module):
    """Cascade of 3x3 convolutions with growing dilation; the outputs of all of them are summed.

    Each convolution feeds the next, so the receptive field grows with every rate, and the sum keeps
    every scale of context (as in the SkinNet paper and D-LinkNet's centre block).

    Args:
        channels: channels in and out.
        rates: dilation rates, applied in this order.
    """

    def __init__(self, channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.rates = list(rates)
        self.convs = nn.ModuleList(ConvBNReLU(channels, channels, dilation=r) for r in self.rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x
        for conv in self.convs:
            x = conv(x)
            total = total + x
        return total


class SkinNet(EncoderDecoder):
    """SkinNet: dense-block encoder and decoder, dilated bottleneck, 2-class logits.

    Args:
        in_channels: input channels (3 for RGB).
        num_classes: output classes (2: background, lesion). The network returns logits; apply softmax
            over dim 1 for probabilities.
        width: channels of the first level; level ``l`` has ``width * 2**l``.
        depth: number of 2x poolings; inputs must have height and width divisible by ``2**depth``.
        growth: channels per dense layer at the first level (doubled per level); default ``width``.
        dilations: dilation rates of the bottleneck cascade.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 2,
        width: int = 32,
        depth: int = 4,
        growth: int | None = None,
        dilations: Sequence[int] = (1, 2, 4, 8, 16, 32),
    ) -> None:
        super().__init__()
        growth = growth or width
        self.depth = depth
        widths = [width * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for level in range(depth):
            self.encoder.append(DenseBlock(channels, widths[level], growth * 2**level))
            channels = widths[level]
        self.pool = nn.MaxPool2d(2)
        self.bottleneck_in = ConvBNReLU(channels, widths[depth])
        self.bottleneck = DilatedBottleneck(widths[depth], dilations)
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in reversed(range(depth)):
            self.ups.append(UpConcat(widths[level + 1], widths[level]))
            self.decoder.append(DenseBlock(2 * widths[level], widths[level], growth * 2**level))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def center(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.bottleneck_in(x))


def effective_dilation_rates(image_size: int, depth: int, rates: Sequence[int]) -> list[int]:
    """Rates whose off-centre taps reach real bottleneck features rather than only zero padding.

    At input size ``S`` the bottleneck map is ``S / 2**depth`` pixels wide; a 3x3 tap at offset ``r``
    from every position lies outside the map once ``r >= S / 2**depth``.
    """
    side = image_size // 2**depth
    return [r for r in rates if r < side]
