"""Model files, the one owner of them: which file (the shipped one by default), its stored config, loading
it with every check, and writing it.

A ``.safetensors`` file stores the tensors and, in its metadata, the run config as JSON (the network
architecture, the input size and the normalisation). Loading it never unpickles anything. Training
checkpoints (``.pt``) are accepted too; they are read with ``torch.load(weights_only=True)``, which refuses
pickled code.

:func:`load_model` checks a file before and after building its network. Before: the file's content decides
its kind (a safetensors file under another name is named as such, not taken for a pickle); its config must
be in range (:func:`skinnet.config.validate`) and its network within :mod:`skinnet.networks.budget`; and the
tensors the file holds must be the ones that network has, shape for shape. All of it is read from the file's
header (safetensors) or a memory map (``.pt``), so nothing is allocated for a file that is refused. After:
every weight must be finite, since NaN weights give empty masks without a word.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

from skinnet import weights
from skinnet.config import Config, ConfigError, config_from_dict
from skinnet.data.atomic import write_bytes
from skinnet.networks import build_model
from skinnet.networks.budget import MAX_PARAMETERS, check_budget

# A safetensors file starts with the length of its JSON header (8 bytes, little-endian), then the header.
HEADER_LIMIT = 100_000_000
# The metadata entry of a safetensors model file that holds its run config, as JSON.
CONFIG_KEY = "config"


class ModelFileError(ValueError):
    """A model file that cannot be loaded."""


class CheckpointError(ModelFileError):
    """A checkpoint that cannot be loaded; a :class:`ModelFileError`, so the CLI reports it in one line."""


def model_path(path: str | Path | None = None) -> Path:
    """The model file to use: ``path``, or the one shipped with the package (:mod:`skinnet.weights`).

    Raises:
        ModelFileError: no path given and this install has no shipped model.
    """
    if path is not None:
        return Path(path)
    shipped = weights.default_model_path()
    if shipped is None:
        raise ModelFileError("no model given and no shipped model found in skinnet/weights/: pass --model PATH "
                             "(e.g. a best.safetensors written by skinnet train)")
    return shipped


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


def is_safetensors(path: str | Path) -> bool:
    """Whether the file's first bytes are a safetensors header, whatever its name."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(9)
            size = Path(path).stat().st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 0 < length <= min(HEADER_LIMIT, size - 8) and head[8:9] == b"{"


def _safetensors_contents(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]]:
    """The stored config (as JSON values) and every tensor's shape, from the header alone."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    if CONFIG_KEY not in metadata:
        raise ModelFileError(f"{path}: safetensors file has no SkinNet config in its metadata")
    return json.loads(metadata[CONFIG_KEY]), shapes


def _checkpoint_contents(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]] | None:
    """The config and tensor shapes of a ``.pt`` checkpoint, memory-mapped; ``None`` where it will not map."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # _build reads it again and says what is wrong with it
        return None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("config"), dict):
        return None
    state = checkpoint.get("model")
    if not isinstance(state, dict):
        return None
    return checkpoint["config"], {name: tuple(t.shape) for name, t in state.items() if isinstance(t, torch.Tensor)}


def check_model_file(path: str | Path) -> Config | None:
    """Refuse a model file before its network is built: wrong kind, config out of range or over budget,
    or tensors that are not the network's.

    Returns:
        The file's config, or ``None`` where the file is not one this check reads (loading it then reports
        what is wrong with it).

    Raises:
        ModelFileError: one line naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        return None
    if is_safetensors(path):
        if path.suffix != ".safetensors":
            raise ModelFileError(f"{path}: a safetensors file (by its content) without the .safetensors suffix; "
                                 f"rename it to {path.stem}.safetensors")
        try:
            saved, shapes = _safetensors_contents(path)
        except ModelFileError:
            raise
        except Exception as err:  # a damaged header fails in the parser in many ways
            raise ModelFileError(f"{path}: cannot read the safetensors header ({type(err).__name__}: "
                                 f"{str(err).splitlines()[0] if str(err) else ''})") from err
    else:
        contents = _checkpoint_contents(path)
        if contents is None:
            return None
        saved, shapes = contents
    stored = sum(int(torch.Size(shape).numel()) for shape in shapes.values())
    if stored > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: the file holds {stored:,} weights, more than the limit of "
                             f"{MAX_PARAMETERS:,}")
    try:
        config = config_from_dict(saved)
        cost = check_budget(config, "saved config")
    except ConfigError as err:
        raise ModelFileError(f"{path}: {err}") from err
    except Exception as err:  # a config of the wrong shape altogether (a list, strings for sections)
        raise ModelFileError(f"{path}: not a usable SkinNet config ({type(err).__name__}: {err})") from err
    _check_shapes(path, cost.shapes, shapes)
    return config


def _check_shapes(path: Path, expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]]) -> None:
    """The file's tensors are exactly the network's, name for name and shape for shape."""
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    wrong = sorted(name for name in set(expected) & set(stored) if expected[name] != stored[name])
    if missing or extra or wrong:
        detail = "; ".join(part for part in (
            f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
            f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
            f"{len(wrong)} of the wrong shape (e.g. {wrong[0]}: {list(stored[wrong[0]])}, the network has "
            f"{list(expected[wrong[0]])})" if wrong else "") if part)
        raise ModelFileError(f"{path}: weights do not match the saved architecture: {detail}")


def check_finite(model: nn.Module, path: str | Path) -> None:
    """Refuse a network with a NaN or infinite weight or buffer.

    Raises:
        ModelFileError: naming the file, the first bad tensor and how many values are bad.
    """
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise ModelFileError(f"{path}: {bad:,} NaN or infinite values in {name}: the file is damaged or "
                                     "comes from a training run that diverged; refused")


def stored_config(path: str | Path | None = None) -> Config:
    """The run config a model file stores (the shipped model's by default), checked as :func:`load_model`
    checks it, without building the network.

    Raises:
        ModelFileError: the file cannot be used; the message names it and says why.
    """
    path = model_path(path)
    config = check_model_file(path)
    return config if config is not None else load_model(path)[1]


def _build(path: Path, device: str | torch.device) -> tuple[nn.Module, Config]:
    """The network of a model file, unchecked but for what building it needs (see :func:`load_model`)."""
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        if path.suffix == ".safetensors":
            config = config_from_dict(_safetensors_contents(path)[0])
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


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """Rebuild the network saved at ``path`` (``.safetensors`` or a training checkpoint ``.pt``; the shipped
    model by default) in eval mode, between :func:`check_model_file` and :func:`check_finite`.

    Raises:
        ModelFileError: the file cannot be used; the message names it and says why.
    """
    path = model_path(path)
    check_model_file(path)
    model, config = _build(path, device)
    check_finite(model, path)
    return model, config


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
    write_bytes(path, save(tensors, metadata={"format": "skinnet", CONFIG_KEY: json.dumps(config.to_dict())}))


def save_config(path: str | Path, out: str | Path, changes: dict[str, dict[str, Any]]) -> Path:
    """Copy a ``.safetensors`` model file to ``out`` with sections of its stored config changed, e.g.
    ``{"inference": {"confidence": "tta"}}``.

    The tensors are copied as they are (float16 stays float16), and the rest of the stored config as it was.

    Raises:
        ModelFileError: the file cannot be used.
        ConfigError: the changed config is not valid.
    """
    path = Path(path)
    check_model_file(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    config = json.loads(metadata[CONFIG_KEY])
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    config_from_dict(config)  # validates
    metadata[CONFIG_KEY] = json.dumps(config)
    write_bytes(out, save(tensors, metadata=metadata))
    return Path(out)
