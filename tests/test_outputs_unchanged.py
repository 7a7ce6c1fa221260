"""Issue 22 moved and renamed code without changing what it writes: these outputs match the code before it.

tests/golden/outputs_before_issue22.json was recorded by this file (``SKINNET_RECORD_GOLDEN=1``) on the
commit before issue 22's restructure (9805025), on the project's 2-core CPU, through the CLI only, so that the
same test ran on both sides. Recording again after a deliberate change of outputs is the only reason to
set the variable; the test then writes the file instead of comparing with it.

What it compares: the masks ``skinnet predict`` writes for the 40 bundled samples with the shipped model
(SHA-256 of each file), the run key of the batch manifest for several option sets (a changed key makes a
resumed archive recompute everything), and a tiny seeded ``skinnet train`` of the paper network and of the
pretrained recipe: log.csv's columns and values (all but the seconds), the run folder's file names, the
SHA-256 of the kept weights' tensors and their stored config (less its folders). Since issue 26 the option
sets pass ``--backend torch``, the default they were recorded with (``int8_default`` was recorded then).
Training was bit-identical over repeated runs on this CPU; other hardware or thread counts may round
differently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "outputs_before_issue22.json"
RECORD = os.environ.get("SKINNET_RECORD_GOLDEN") == "1"
SAMPLES = REPO / "skinnet" / "sample_data"
SHIPPED = REPO / "skinnet" / "weights" / "skinnet_isic2017.safetensors"
# option sets whose manifest key must not change (run on one image: the key does not depend on the images)
KEY_OPTIONS = {
    # "--backend torch": the default before issue 26 made the packaged int8 copy the CPU default, so that these
    # keys are the ones of folders written then (they resume with it)
    "default": ["--backend", "torch"],
    "no_tta_no_postprocess": ["--backend", "torch", "--tta", "off", "--postprocess", "none"],
    "fill_holes": ["--backend", "torch", "--postprocess", "fill_holes"],
    "writers": ["--backend", "torch", "--overlay", "--probability", "--uncertainty", "--measurements",
                "{tmp}/m.csv", "--pixel-spacing", "0.02"],
    "dicom_seg": ["--backend", "torch", "--dicom-seg"],
    "onnx": ["--backend", "onnx"],
    "int8_default": [],  # since issue 26, on a CPU: the packaged int8 copy on ONNX Runtime
}
TRAINS = {
    "paper": ["--config", str(REPO / "configs" / "cpu.yaml"), "model.width=4", "data.image_size=64",
              "train.epochs=1", "model.dilations=[1,2]"],
    "pretrained": ["--config", str(REPO / "configs" / "pretrained.yaml"), "model.width=4", "data.image_size=64",
                   "train.epochs=1", "train.batch_size=4"],
}

pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="no shipped model in skinnet/weights/")


def skinnet(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "skinnet", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_digest(path: Path) -> tuple[str, dict[str, Any]]:
    """SHA-256 of a model file's tensors (names, dtypes, shapes, bytes) and its stored config without the
    folders, which name this test's temporary directory."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), framework="np") as handle:
        config = json.loads((handle.metadata() or {})["config"])
        for name in sorted(handle.keys()):
            tensor = handle.get_tensor(name)
            digest.update(f"{name} {tensor.dtype} {tensor.shape}".encode())
            digest.update(tensor.tobytes())
    config["data"].update(root=None, cache_dir=None)
    return digest.hexdigest(), config


def check(section: str, name: str, value: Any) -> None:
    """Compare with the recorded value, or record it."""
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    if RECORD:
        golden.setdefault(section, {})[name] = value
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    assert value == golden[section][name], f"{section}/{name} changed"


@pytest.mark.slow
def test_predict_writes_the_same_masks(tmp_path: Path) -> None:
    done = skinnet("predict", str(SAMPLES / "images"), "--out", str(tmp_path), "--backend", "torch",
                   "--progress", "off")
    assert done.returncode == 0, done.stderr[-3000:]
    masks = {path.name: sha256(path) for path in sorted(tmp_path.glob("*_segmentation.png"))}
    assert len(masks) == 40
    check("predict_masks", "default", masks)


@pytest.mark.slow
@pytest.mark.parametrize("options", KEY_OPTIONS, ids=str)
def test_the_manifest_keys_a_resumed_run_compares_are_the_same(options: str, tmp_path: Path,
                                                               make_dicom: Callable[..., Path]) -> None:
    image = SAMPLES / "images" / "ISIC_0000025.jpg"
    if options == "dicom_seg":  # a SEG references a DICOM image
        image = make_dicom(tmp_path / "image.dcm", np.asarray(Image.open(image).convert("RGB")))
    args = [arg.format(tmp=tmp_path) for arg in KEY_OPTIONS[options]]
    done = skinnet("predict", str(image), "--out", str(tmp_path / "out"), "--progress", "off", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    check("manifest_keys", options, manifest["key"])


@pytest.mark.slow
@pytest.mark.parametrize("recipe", TRAINS, ids=str)
def test_a_tiny_seeded_train_writes_the_same_log_and_weights(recipe: str, tmp_path: Path) -> None:
    done = skinnet("train", "--data", str(SAMPLES), "--out", str(tmp_path), "--fold", "0", *TRAINS[recipe],
                   f"data.cache_dir={tmp_path / 'cache'}")
    assert done.returncode == 0, done.stderr[-3000:]
    fold = tmp_path / "fold_0"
    rows = list(csv.DictReader((fold / "log.csv").read_text().splitlines()))
    log = {"columns": list(rows[0]), "rows": [{key: value for key, value in row.items() if key != "seconds"}
                                             for row in rows]}
    check("train_logs", recipe, log)
    tensors, config = weights_digest(fold / "best.safetensors")
    check("train_weights", recipe, tensors)
    check("train_stored_configs", recipe, config)
    check("train_files", recipe, sorted(path.name for path in fold.iterdir()))
