"""What a network costs before it exists: its parameters and activations, from the config alone.

The network is built on PyTorch's ``meta`` device, which records shapes and allocates nothing, and run once
on a meta input of the configured size. A config whose network would exceed :data:`MAX_PARAMETERS` or
:data:`MAX_ACTIVATION_BYTES` is refused, so a model file's metadata (or a command line) cannot make the
process allocate gigabytes before failing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skinnet.config import Config, ConfigError

# The paper's network (width 32) has 22 M parameters; width 64 has 88 M.
MAX_PARAMETERS = 100_000_000
# Sum of every layer's float32 output for one image: 1.26 GB for the paper's network at 512 px, 10 GB at
# width 64 and 1024 px. It bounds a forward pass's peak from above (PyTorch frees outputs as it goes).
MAX_ACTIVATION_BYTES = 8_000_000_000
# One forward pass of a prediction batch: its images' summed layer outputs, times the flip views with TTA. An
# upper bound of the pass's peak (inference frees outputs as it goes), so it is generous: the shipped network
# (0.14 GB an image at 256 px, with TTA) allows batches of 115, the paper's at 512 px with TTA 12.
MAX_BATCH_BYTES = 64_000_000_000
# Images per forward pass whatever the network: the padding of a short batch alone grows with it.
MAX_BATCH_SIZE = 4096


@dataclass(frozen=True)
class NetworkCost:
    """Parameters and buffers (elements); the summed layer outputs of one image, or an upper bound of that sum
    where the bound is within the limit (bytes, float32); and the shape of every tensor, by name."""

    parameters: int
    activation_bytes: int
    shapes: dict[str, tuple[int, ...]]


def network_cost(config: Config) -> NetworkCost:
    """The cost of ``config``'s network at ``config.data.image_size``, measured on the meta device."""
    from skinnet.networks import build_model

    with torch.device("meta"):
        model = build_model(config.model).eval()
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    parameters = sum(int(torch.Size(shape).numel()) for shape in shapes.values())
    leaves = [module for module in model.modules() if not list(module.children())]
    size = config.data.image_size
    # No layer output has more channels than the widest weight or more pixels than the input, so this bound
    # is above the exact sum; below the limit it spares the meta forward pass, whose first call costs a second
    # of imports.
    widest = max((max(shape[:2]) for shape in shapes.values() if len(shape) >= 2), default=1)
    bound = len(leaves) * max(widest, config.model.in_channels) * size * size * 4
    if bound <= MAX_ACTIVATION_BYTES:
        return NetworkCost(parameters, bound, shapes)
    total = 0

    def count(_: torch.nn.Module, __: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    hooks = [module.register_forward_hook(count) for module in leaves]
    with torch.no_grad():
        model(torch.empty(1, config.model.in_channels, size, size, device="meta"))
    for hook in hooks:
        hook.remove()
    return NetworkCost(parameters, total * 4, shapes)


def check_budget(config: Config, where: str) -> NetworkCost:
    """:func:`network_cost`, refusing a network over :data:`MAX_PARAMETERS` or :data:`MAX_ACTIVATION_BYTES`.

    Args:
        config: the architecture and input size.
        where: what asked for it (a model file, ``"config"``), for the message.

    Raises:
        ConfigError: one line naming ``where``, the cost and the limit.
    """
    cost = network_cost(config)
    model = config.model
    network = f"{model.name} width {model.width}, depth {model.depth}, {len(model.dilations)} rates"
    if cost.parameters > MAX_PARAMETERS:
        raise ConfigError(f"{where}: the network ({network}) would have {cost.parameters:,} parameters, more than "
                          f"the limit of {MAX_PARAMETERS:,}")
    if cost.activation_bytes > MAX_ACTIVATION_BYTES:
        raise ConfigError(f"{where}: the network ({network}) at {config.data.image_size} px would need "
                          f"{cost.activation_bytes / 1e9:.1f} GB of activations per image, more than the limit of "
                          f"{MAX_ACTIVATION_BYTES / 1e9:g} GB")
    return cost
