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


# How a PyTorch checkpoint starts: a zip archive (torch.save since 1.6), or a pickle (protocol 2 or later).
TORCH_SIGNATURES = (b"PK\x03\x04", b"\x80")
# Files often given as a model by mistake, named in the refusal.
FOREIGN_SIGNATURES = ((b"\xff\xd8\xff", "a JPEG image"), (b"\x89PNG\r\n\x1a\n", "a PNG image"),
                      (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF"),
                      (b"RIFF", "a RIFF file (WebP, WAV)"), (b"{", "JSON text"))


def _not_a_checkpoint(path: Path) -> str | None:
    """Why the file cannot be a PyTorch checkpoint, from its first bytes; ``None`` where it may be one."""
    with open(path, "rb") as handle:
        head = handle.read(132)
    if head.startswith(TORCH_SIGNATURES):
        return None
    what = next((name for signature, name in FOREIGN_SIGNATURES if head.startswith(signature)), None)
    if head[128:132] == b"DICM":
        what = "a DICOM file"
    what = what or ("an empty file" if not head else "neither safetensors, a PyTorch checkpoint nor ONNX")
    return (f"not a model file ({what}, by its content): pass a .safetensors model, a training checkpoint "
            "(.pt) or an exported .onnx file")


def load_torch_file(path: str | Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain Python values only; pickled code is refused.

    Raises:
        CheckpointError: the file is missing, not a checkpoint at all (an image, say), truncated or corrupt,
            or holds pickled objects other than tensors (refused without running them).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    reason = _not_a_checkpoint(path)
    if reason:
        raise CheckpointError(f"{path}: {reason}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message spans many lines and suggests weights_only=False; what it refused is what matters.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if not found:
            stopped = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", str(err), re.S)
            detail = " ".join((stopped.group(1) if stopped else type(err).__name__).split())[:120]
            raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt (the unpickler "
                                  f"stopped: {detail})") from err
        raise CheckpointError(f"{path}: refused: the file holds pickled objects other than tensors, which "
                              f"could run code (unpickling needs {found.group(1)}); load only checkpoints you "
                              "trust") from err
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
