"""Seeded k-fold splits saved as JSON that a user may read and edit.

Format: ``{"seed": 42, "n_folds": 5, "folds": [[id, ...], ...]}``; fold ``k`` validates on
``folds[k]`` and trains on all other folds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from skinnet.data.atomic import write_json


class SplitError(ValueError):
    """A split file that does not match the data."""


def make_folds(ids: list[str], n_folds: int, seed: int) -> list[list[str]]:
    """Shuffle ``ids`` with ``seed`` and deal them into ``n_folds`` folds of near-equal size."""
    if len(ids) < n_folds:
        raise SplitError(f"{len(ids)} pairs cannot be split into {n_folds} folds")
    shuffled = sorted(ids)
    random.Random(seed).shuffle(shuffled)
    return [sorted(shuffled[k::n_folds]) for k in range(n_folds)]


def load_or_create_folds(path: str | Path, ids: list[str], n_folds: int, seed: int) -> list[list[str]]:
    """Read the split file at ``path``, or create it from ``ids`` if it does not exist.

    Raises:
        SplitError: the file is malformed, lists an ID twice, names IDs missing from the data, or has another
            number of folds than ``n_folds`` (a reused run folder would otherwise train the old split).
    """
    path = Path(path)
    if not path.exists():
        folds = make_folds(ids, n_folds, seed)
        write_json(path, {"seed": seed, "n_folds": n_folds, "folds": folds})
        return folds
    folds = load_folds(path, ids)
    if len(folds) != n_folds:
        raise SplitError(f"{path}: has {len(folds)} folds, the config asks for train.n_folds={n_folds}; use "
                         "another --out for a new split, or set train.n_folds to match")
    return folds


def load_folds(path: str | Path, ids: Sequence[str] | None = None) -> list[list[str]]:
    """Read an existing split file and check it: a list of folds of ID strings, no ID twice, and, given the
    data's ``ids``, no ID missing from the data.

    Raises:
        SplitError: the file is missing or malformed, lists an ID twice, or names IDs missing from the data.
    """
    path = Path(path)
    if not path.exists():
        raise SplitError(f"{path}: split file not found")
    try:
        folds = json.loads(path.read_text())["folds"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise SplitError(f"{path}: not a split file ({err})") from err
    if not (isinstance(folds, list) and folds and all(isinstance(fold, list) for fold in folds)
            and all(isinstance(key, str) for fold in folds for key in fold)):
        raise SplitError(f"{path}: 'folds' must be a non-empty list of lists of image IDs")
    listed = [key for fold in folds for key in fold]
    if len(listed) != len(set(listed)):
        raise SplitError(f"{path}: an ID appears in more than one fold")
    unknown = sorted(set(listed) - set(ids)) if ids is not None else []
    if unknown:
        raise SplitError(f"{path}: {len(unknown)} IDs are not in the data, e.g. {unknown[:3]}")
    return folds


def fold_ids(folds: list[list[str]], fold: int) -> tuple[list[str], list[str]]:
    """(train IDs, validation IDs) of fold ``fold``."""
    if not 0 <= fold < len(folds):
        raise SplitError(f"fold {fold} does not exist; the split has folds 0..{len(folds) - 1}")
    train = [key for k, ids in enumerate(folds) if k != fold for key in ids]
    return train, list(folds[fold])
