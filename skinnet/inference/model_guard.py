"""Model files checked before and after :func:`~skinnet.networks.files.load_model` builds their network.

Before: the file's content decides its kind (a safetensors file under another name is named as such, not
taken for a pickle); its config must be in range (:func:`skinnet.config.validate`) and its network within
:mod:`skinnet.budget`; and the tensors the file holds must be the ones that network has, shape for shape.
All of it is read from the file's header (safetensors) or a memory map (``.pt``), so nothing is allocated for
a file that is refused. After: every weight must be finite, since NaN weights give empty masks without a
word.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch
from torch import nn

from skinnet.budget import MAX_PARAMETERS, check_budget
from skinnet.config import Config, ConfigError, config_from_dict
from skinnet.networks.files import ModelFileError, load_model

# A safetensors file starts with the length of its JSON header (8 bytes, little-endian), then the header.
HEADER_LIMIT = 100_000_000


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
    """The saved config and every tensor's shape, from the header alone."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    if "config" not in metadata:
        raise ModelFileError(f"{path}: safetensors file has no SkinNet config in its metadata")
    return json.loads(metadata["config"]), shapes


def _checkpoint_contents(path: Path) -> tuple[dict[str, Any], dict[str, tuple[int, ...]]] | None:
    """The config and tensor shapes of a ``.pt`` checkpoint, memory-mapped; ``None`` where it will not map."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # load_model reads it again and says what is wrong with it
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
        The file's config, or ``None`` where the file is not one this check reads (``load_model`` then
        reports what is wrong with it).

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


def load_checked(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """:func:`~skinnet.networks.files.load_model` between :func:`check_model_file` and :func:`check_finite`.

    Raises:
        ModelFileError: the file cannot be used; the message names it and says why.
    """
    check_model_file(path)
    model, config = load_model(path, device)
    check_finite(model, path)
    return model, config
