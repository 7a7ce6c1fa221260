"""Model files: weights and the config that rebuilds the network, in one safetensors file.

A ``.safetensors`` file stores the tensors and, in its metadata, the run config as JSON (the network
architecture, the input size and the normalisation). Loading it never unpickles anything. Training
checkpoints (``.pt``) are accepted too; they are read with ``torch.load(weights_only=True)``, which refuses
pickled code.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save
from torch import nn

from skinnet.config import Config, config_from_dict
from skinnet.data.io import write_bytes
from skinnet.networks import build_model


class ModelFileError(ValueError):
    """A model file that cannot be loaded."""


class CheckpointError(ModelFileError):
    """A checkpoint that cannot be loaded; a :class:`ModelFileError`, so the CLI reports it in one line."""


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0]


def load_torch_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain Python values only; pickled code is refused.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or holds pickled objects other than
            tensors (refused without running them).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message spans many lines and suggests allowlisting; the refused global is what matters.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f"unpickling needs {found.group(1)}" if found else _first_line(err)
        raise CheckpointError(f"{path}: refused: the file holds pickled objects other than tensors, which "
                              f"could run code ({detail}); load only checkpoints you trust") from err
    except Exception as err:  # zip, pickle and storage errors come in many types
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt "
                              f"({type(err).__name__}: {_first_line(err)})") from err


def save_weights(path: str | Path, model: nn.Module, config: Config, half: bool = False) -> None:
    """Write ``model``'s weights and ``config`` to a safetensors file atomically.

    Args:
        path: destination ``.safetensors`` file.
        model: the network.
        config: the run config (rebuilds the network and its preprocessing).
        half: store the learned parameters as float16 (halves the file; loading casts back to float32).
            Buffers such as batch-norm running statistics stay float32: a running variance can exceed
            float16's range (65504) and would load as infinity, silencing its channels.
    """
    parameters = {name for name, _ in model.named_parameters()}
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        tensors[name] = tensor.half() if half and name in parameters and tensor.is_floating_point() else tensor
    # Serialised in memory, then written plainly: a full disk then gives an OSError naming the file.
    write_bytes(path, save(tensors, metadata={"format": "skinnet", "config": json.dumps(config.to_dict())}))


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
            checkpoint = load_torch_file(path)
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
