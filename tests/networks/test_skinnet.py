"""SkinNet's structure: dense concatenation at every level, the configured dilations, shapes, learning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from skinnet.config import ModelConfig
from skinnet.losses import soft_dice_loss
from skinnet.networks import DenseBlock, DilatedBottleneck, SkinNet, UNet, build_model, effective_dilation_rates


def conv_inputs(module: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Record the input channel count that each Conv2d inside ``module`` sees during a forward pass."""
    seen: dict[str, int] = {}
    hooks = [
        m.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, inp[0].shape[1]))
        for name, m in module.named_modules() if isinstance(m, nn.Conv2d)
    ]
    module(x)
    for hook in hooks:
        hook.remove()
    return seen


def test_dense_block_feeds_each_layer_all_earlier_outputs() -> None:
    block = DenseBlock(in_channels=5, out_channels=7, growth=3).eval()
    seen = conv_inputs(block, torch.randn(1, 5, 8, 8))
    assert seen["layers.0.0"] == 5  # the block input
    assert seen["layers.1.0"] == 5 + 3  # input + layer 0
    assert seen["fuse.0"] == 5 + 3 + 3  # input + both layers
    # The second layer's output must depend on the block input directly, not only through layer 0.
    x = torch.randn(1, 5, 8, 8)
    features0 = block.layers[0](x)
    direct = block.layers[1](torch.cat([x, features0], 1))
    without_input = block.layers[1](torch.cat([torch.zeros_like(x), features0], 1))
    assert not torch.allclose(direct, without_input)


def test_every_encoder_and_decoder_level_is_a_dense_block() -> None:
    net = SkinNet(width=8, depth=4, growth=4)
    assert len(net.encoder) == 4 and len(net.decoder) == 4
    assert all(isinstance(block, DenseBlock) for block in [*net.encoder, *net.decoder])
    assert [len(block.layers) for block in [*net.encoder, *net.decoder]] == [2] * 8
    assert [block.out_channels for block in net.encoder] == [8, 16, 32, 64]
    assert [block.out_channels for block in net.decoder] == [64, 32, 16, 8]
    # growth doubles per level like the width
    assert [block.layers[0][0].out_channels for block in net.encoder] == [4, 8, 16, 32]


@pytest.mark.parametrize("rates", [[1, 2, 4, 8, 16, 32], [1, 3, 5]])
def test_bottleneck_uses_the_configured_dilation_rates(rates: list[int]) -> None:
    net = build_model(ModelConfig(width=4, dilations=rates))
    assert isinstance(net.bottleneck, DilatedBottleneck)
    convs = [m for m in net.bottleneck.modules() if isinstance(m, nn.Conv2d)]
    assert [conv.dilation for conv in convs] == [(r, r) for r in rates]
    assert [conv.padding for conv in convs] == [(r, r) for r in rates]  # size-preserving


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (128, 96), (80, 112)])
@pytest.mark.parametrize("name", ["skinnet", "unet"])
def test_output_has_the_input_size_and_two_classes(size: tuple[int, int], name: str) -> None:
    net = build_model(ModelConfig(name=name, width=4)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 2, *size)


def test_shallower_net_accepts_smaller_multiples() -> None:
    net = SkinNet(width=4, depth=2, dilations=[1, 2]).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 12, 20)).shape == (1, 2, 12, 20)


def test_indivisible_input_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth=16"):
        SkinNet(width=4)(torch.randn(1, 3, 40, 40))


def test_unet_baseline_has_no_dense_blocks_or_dilations() -> None:
    net = UNet(width=4)
    assert not any(isinstance(m, DenseBlock | DilatedBottleneck) for m in net.modules())
    assert all(m.dilation == (1, 1) for m in net.modules() if isinstance(m, nn.Conv2d))


def test_effective_dilation_rates_depend_on_input_size() -> None:
    rates = [1, 2, 4, 8, 16, 32]
    assert effective_dilation_rates(128, 4, rates) == [1, 2, 4]  # 8x8 bottleneck
    assert effective_dilation_rates(256, 4, rates) == [1, 2, 4, 8]  # 16x16
    assert effective_dilation_rates(512, 4, rates) == [1, 2, 4, 8, 16]  # 32x32


def test_a_few_training_steps_reduce_the_loss_on_a_tiny_batch() -> None:
    torch.manual_seed(0)
    net = SkinNet(width=4, dilations=[1, 2])
    images = torch.randn(2, 3, 32, 32)
    target = torch.zeros(2, 32, 32, dtype=torch.long)
    target[:, 8:24, 8:24] = 1
    images[:, 0][target.bool()] += 2.0  # a learnable cue
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = soft_dice_loss(net(images), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
