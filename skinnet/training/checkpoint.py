"""Full training state on disk: written atomically, read without unpickling code."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinnet.data.atomic import write_bytes
from skinnet.networks.files import CheckpointError, load_torch_file

__all__ = ["CheckpointError", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]




def rng_state() -> dict[str, Any]:
    """The state of every random generator training uses, in types ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.copy()), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy(), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write a checkpoint dict atomically: a crash mid-write leaves the previous file intact.

    Raises:
        OSError: the file cannot be written (e.g. a full disk); the message names ``path``.
    """
    # Serialise in memory first: torch reports a failed file write as an opaque RuntimeError,
    # a plain write gives an OSError that names the file and the reason (e.g. no space left).
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain Python values only, no code.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or holds pickled code
            (refused without running it).
    """
    state = load_torch_file(path)
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a SkinNet checkpoint (no model entry)")
    return state
