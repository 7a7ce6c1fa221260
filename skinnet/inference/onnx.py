"""ONNX export (dynamic batch and spatial size) and the ONNX Runtime backend of a Segmenter."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skinnet.config import PRECISIONS, Config, config_from_dict
from skinnet.data.atomic import atomic_path
from skinnet.data.cache import default_cache_dir
from skinnet.extras import require
from skinnet.networks.files import ModelFileError, load_model

# Optional (the 'onnx' extra): without them, importing this module says in one line how to install them.
onnx = require("onnx", "onnx", "ONNX support")
ort = require("onnxruntime", "onnx", "ONNX support")

OPSET = 17
# The file's metadata: the run config (written by export_onnx) and, in a quantised copy, its precision
# (written by skinnet.inference.quantize; absent means float32).
CONFIG_KEY = "skinnet_config"
PRECISION_KEY = "skinnet_precision"
# Part of the export cache's key: raise it when export_onnx writes a different graph, so that files exported
# by an older version are not reused (2: the lesion probability as a sigmoid of the logit difference).
EXPORT_REVISION = 2
# Intermediate files of an export or a quantisation live in a folder of this prefix beside the result, named
# with the host and process id so that the next call there removes one a killed process left behind.
SCRATCH_PREFIX = ".skinnet-scratch-"
# atomic_path temporaries ('.NAME.onnx.XXXX.tmp') older than this were left by a killed process.
STALE_TEMPORARY_SECONDS = 3600


def export_onnx(model: nn.Module, config: Config, path: str | Path) -> Path:
    """Export ``model`` to ONNX with inputs ``(batch, 3, height, width)`` free, outputs lesion probabilities.

    The graph returns the lesion channel of the 2-class softmax, ``(batch, height, width)``; the run config
    is stored in the file's metadata under :data:`CONFIG_KEY` so that the file alone can be used.
    """
    path = Path(path)

    class LesionProbability(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # softmax(l)[1] = sigmoid(l1 - l0) for two classes. ONNX Runtime's Softmax over the channel axis of
            # an NCHW map transposes it, which took 8 % of the network's CPU time; Sub and Sigmoid take <1 %.
            logits = self.net(x)
            return torch.sigmoid(logits[:, 1] - logits[:, 0])

    wrapper = LesionProbability(model).cpu().eval()
    size = config.data.image_size
    example = torch.zeros(1, config.model.in_channels, size, size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The TorchScript exporter handles this network fully; the dynamo one would need onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        # The exporter writes each ZeroPad2d of the EfficientNet-Lite encoder with a reversed (step -1) Slice of
        # the pads, which it cannot constant-fold and says so on every export: a warning users can do nothing
        # about, on a few shape operations that cost nothing next to the convolutions.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            wrapper, (example,), str(tmp), input_names=["image"], output_names=["lesion_probability"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "lesion_probability": {0: "batch", 1: "height", 2: "width"}},
            opset_version=OPSET, dynamo=False,
        )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        entry = graph.metadata_props.add()
        entry.key, entry.value = CONFIG_KEY, json.dumps(config.to_dict())
        onnx.save(graph, str(tmp))
    return path


def onnx_path_for(weights: Path, variant: str = "") -> Path:
    """Where the ONNX export of a weights file is cached.

    Keyed by the file's content, the exporter's revision and ``variant`` (what else made the file, e.g. a
    quantisation and its calibration; empty for the plain float32 export).
    """
    key = weights.read_bytes() + f"export {EXPORT_REVISION} {variant}".encode()
    suffix = f"-{variant.split()[0]}" if variant else ""
    return default_cache_dir() / "onnx" / f"{weights.stem}-{hashlib.sha256(key).hexdigest()[:16]}{suffix}.onnx"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_abandoned_scratch(folder: Path) -> list[Path]:
    """Delete the scratch folders of :func:`scratch_folder` whose process (on this host) is gone, and
    ``atomic_path`` temporaries of ONNX files older than an hour; returns what was deleted."""
    removed: list[Path] = []
    host = socket.gethostname()
    for path in folder.glob(f"{SCRATCH_PREFIX}*"):
        owner = path.name[len(SCRATCH_PREFIX):].rsplit("-", 2)
        if len(owner) == 3 and owner[0] == host and owner[1].isdigit() and not _alive(int(owner[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path in folder.glob(".*.onnx.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def scratch_folder(parent: Path) -> Iterator[Path]:
    """A private folder in ``parent`` (created if need be) for intermediate files, removed afterwards.

    One that a process killed with ``kill -9`` left behind is removed by the next call in ``parent``
    (:func:`remove_abandoned_scratch`); a file made in it and renamed onto its place in ``parent`` appears
    whole or not at all (the same file system).
    """
    parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_scratch(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{socket.gethostname()}-{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def cached_export(weights: Path) -> Path:
    """The float32 ONNX export of a weights file: exported on first use (atomically), then reused."""
    onnx_file = onnx_path_for(weights)
    if not onnx_file.exists():
        model, config = load_model(weights)
        with scratch_folder(onnx_file.parent) as scratch:
            os.replace(export_onnx(model, config, scratch / onnx_file.name), onnx_file)
    return onnx_file


def stored_config(metadata: Mapping[str, str], path: str | Path) -> Config:
    """The run config that :func:`export_onnx` stored in an ONNX file's metadata (``key -> value``).

    Raises:
        ModelFileError: the file has none (it was not exported by skinnet).
    """
    if CONFIG_KEY not in metadata:
        raise ModelFileError(f"{path}: ONNX file has no {CONFIG_KEY} metadata (not exported by skinnet)")
    return config_from_dict(json.loads(metadata[CONFIG_KEY]))


class OnnxBackend:
    """ONNX Runtime session as a backend: normalised ``float32 (N, 3, H, W)`` in, lesion probabilities out.

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        threads: intra-op threads (default: all cores).
    """

    # How a run's manifest names this backend (see skinnet.inference.segmenter.TorchBackend.manifest_name).
    manifest_name = "OnnxModel"
    backend = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), options, providers=ort.get_available_providers())
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            raise ModelFileError(f"{path}: cannot load ONNX model ({err})") from err
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config = stored_config(meta, path)
        self.precision = meta.get(PRECISION_KEY, "float32")
        if self.precision not in PRECISIONS:
            raise ModelFileError(f"{path}: unknown {PRECISION_KEY} {self.precision[:40]!r} in the ONNX metadata "
                                 f"(expected one of {', '.join(PRECISIONS)})")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})[0]
