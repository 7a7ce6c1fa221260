"""What produced a folder of predictions: the model files' SHA-256 and the options, in ``manifest.json``.

The identity of a run is every choice that changes its output files: the content of each model file (not
its path), the backend and its precision, TTA, threshold, post-processing, and the writers with their
settings. Its short hash, the run key, tells a resumed run whether outputs already in the folder are its own.
Thread counts and batch size are not part of it: they change results by float rounding at most.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinnet.data.atomic import file_sha256, write_json
from skinnet.version import __version__

if TYPE_CHECKING:
    from skinnet.inference.predictor import Predictor

MANIFEST = "manifest.json"


def run_identity(predictor: Predictor, writers: list[Any]) -> dict[str, Any] | None:
    """Everything the outputs depend on; ``None`` for a model not loaded from files (nothing to record)."""
    files = [Path(path) for path in predictor.model_files]
    if not files:
        return None
    return {"models": [{"file": str(path), "sha256": file_sha256(path)} for path in files],
            "inference": predictor.describe(), "outputs": [writer.identity() for writer in writers]}


def run_key(identity: dict[str, Any]) -> str:
    """16 hex digits naming an identity; model file paths do not count, only their content."""
    content = {**identity, "models": [model["sha256"] for model in identity["models"]]}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The folder's manifest, or ``None`` where it has none or an unreadable one."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def write_manifest(out_dir: Path, identity: dict[str, Any] | None, key: str | None) -> None:
    """Record which model and options made the folder's outputs (atomically)."""
    write_json(out_dir / MANIFEST, {"key": key, "skinnet": __version__, **(identity or {})})
