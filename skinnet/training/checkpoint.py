"""Full training state on disk: written atomically, read without unpickling code."""

from __future__ import annotations

import io
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinnet.data.io import write_bytes
from skinnet.networks.files import ModelFileError


class CheckpointError(ModelFileError):
    """A checkpoint that cannot be loaded; a :class:`ModelFileError`, so the CLI reports it in one line."""


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


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: tensors and plain Python values only, no code.

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or holds pickled code
            (refused without running it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message spans many lines and suggests allowlisting; the refused global is what matters.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f"unpickling needs {found.group(1)}" if found else _first_line(err)
        raise CheckpointError(f"{path}: refused: the file holds pickled objects other than tensors, which "
                              f"could run code ({detail}); load only checkpoints you trust") from err
    except Exception as err:  # zip, pickle and storage errors come in many types
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt "
                              f"({type(err).__name__}: {_first_line(err)})") from err
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a SkinNet checkpoint (no model entry)")
    return state
