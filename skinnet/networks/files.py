"""Model files: weights and the config that rebuilds the network, in one safetensors file.

A ``.safetensors`` file stores the tensors and, in its metadata, the run config as JSON (the network
architecture, the input size and the normalisation). Loading it never unpickles anything. Training
checkpoints (``.pt``) are accepted too; they are read with ``torch.load(weights_only=True)``, which refuses
pickled code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from skinnet.config import Config, config_from_dict
from skinnet.data.io import atomic_path
from skinnet.networks import build_model


class ModelFileError(ValueError):
    """A model file that cannot be loaded."""


def save_weights(path: str | Path, model: nn.Module, config: Config, half: bool = False) -> None:
    """Write ``model``'s weights and ``config`` to a safetensors file atomically.

    Args:
        path: destination ``.safetensors`` file.
        model: the network.
        config: the run config (rebuilds the network and its preprocessing).
        half: store floating-point tensors as float16 (halves the file; loading casts back to float32).
    """
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        tensors[name] = tensor.half() if half and tensor.is_floating_point() else tensor
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "skinnet", "config": json.dumps(config.to_dict())})


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """Rebuild the network saved at ``path`` (``.safetensors`` or a training checkpoint ``.pt``) in eval mode.

    Raises:
        ModelFileError: missing file, not a SkinNet model file, or weights that do not fit the config.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            if "config" not in metadata:
                raise ModelFileError(f"{path}: safetensors file has no SkinNet config in its metadata")
            config = config_from_dict(json.loads(metadata["config"]))
            state = load_file(str(path))
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(checkpoint, dict) or "config" not in checkpoint or "model" not in checkpoint:
                raise ModelFileError(f"{path}: not a SkinNet checkpoint (no config/model entries)")
            config = config_from_dict(checkpoint["config"])
            state = checkpoint["model"]
    except ModelFileError:
        raise
    except Exception as err:  # safetensors, pickle and zip errors come in many types
        raise ModelFileError(f"{path}: cannot load model file ({type(err).__name__}: {err})") from err
    model = build_model(config.model)
    try:
        model.load_state_dict({name: tensor.float() if tensor.is_floating_point() else tensor
                               for name, tensor in state.items()})
    except RuntimeError as err:
        raise ModelFileError(f"{path}: weights do not match the saved architecture ({err})") from err
    return model.to(device).eval(), config
