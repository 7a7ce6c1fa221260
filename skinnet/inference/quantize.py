"""Static int8 quantisation of an exported ONNX model, for faster inference on a CPU.

ONNX Runtime's static quantisation (QDQ format: weights int8 per output channel, activations uint8 with
ranges calibrated on real images) runs the network about twice as fast on an x86 CPU as float32, and the
shipped model's int8 copy scores the same out of fold (``benchmarks/int8_oof.py``; docs/results/speed.md,
"int8"). That copy ships in the package (:data:`skinnet.weights.PACKAGED_INT8`, made by
``scripts/make_packaged_int8.sh``); other weights files are quantised on first use and cached
(:func:`cached_int8`). Every int8 file records the SHA-256 of the weights it was made from, checked on load.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.data.atomic import file_sha256
from skinnet.data.cache import resize_image
from skinnet.data.io import InputError, read_image
from skinnet.data.layout import find_images
from skinnet.data.normalize import prepare_input
from skinnet.data.samples import SAMPLE_IMAGES
from skinnet.extras import require
from skinnet.inference.onnx import (
    CONFIG_KEY,
    PRECISION_KEY,
    OnnxBackend,
    cached_export,
    onnx_path_for,
    scratch_folder,
    stored_config,
)
from skinnet.networks.files import ModelFileError
from skinnet.weights import PACKAGED_INT8, is_shipped_model, packaged_int8_path

onnx = require("onnx", "onnx", "ONNX support")
quantization = require("onnxruntime.quantization", "onnx", "ONNX support")
preprocessing = require("onnxruntime.quantization.shape_inference", "onnx", "ONNX support")

# What calibrated the file (JSON: images, seed, files), kept beside skinnet.inference.onnx's config and
# precision keys, and the SHA-256 of the weights file it is a copy of (checked on load: int8_problem).
CALIBRATION_KEY = "skinnet_calibration"
WEIGHTS_KEY = "skinnet_weights_sha256"
# Calibration images used by default: enough for stable min-max ranges, and a few seconds to calibrate.
CALIBRATION_IMAGES = 64
# Raise it when quantize_onnx writes a different graph or metadata, so that cached int8 files of older versions
# are not reused (the cache key of cached_int8 also holds the number of calibration images and their files'
# names). 2: the weights' SHA-256 in the metadata.
QUANTIZE_REVISION = 2
# A calibration image whose pixels vary less than this (standard deviation, 0-255) has nothing to calibrate
# on: five black images set ranges that clip every real image's activations (mean Dice 0.80 against float32).
MIN_CALIBRATION_STD = 4.0
# Masks of an int8 copy below this mean Dice against float32's (on the bundled samples) are reported.
AGREEMENT_WARNING = 0.95
# ONNX Runtime's quantiser writes its intermediate models to the process's temporary folder; while it runs,
# that folder is pointed at our scratch folder (one quantisation at a time per process).
_TEMPDIR_LOCK = threading.Lock()


def calibration_set(inputs: Iterable[str | Path], count: int = CALIBRATION_IMAGES, seed: int = 0,
                    exclude: Iterable[str | Path] = ()) -> tuple[list[np.ndarray], list[Path], list[InputError]]:
    """Up to ``count`` images drawn (seeded) from the image files and folders ``inputs``.

    The files are shuffled with ``seed`` and taken in that order; a file that cannot be read, a nearly
    uniform image (e.g. black) or one whose bytes are those of a file in ``exclude`` is skipped, and the next
    is taken instead.

    Returns:
        The images read, their files (sorted), and the files skipped (each with its reason).

    Raises:
        LayoutError: an input does not exist, or holds no image.
    """
    files = find_images(inputs)
    random.Random(seed).shuffle(files)
    excluded: dict[int, set[str]] = {}
    for path in exclude:
        excluded.setdefault(Path(path).stat().st_size, set()).add(file_sha256(path))
    chosen: list[tuple[Path, np.ndarray]] = []
    problems: list[InputError] = []
    for path in files:
        if len(chosen) == count:
            break
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            if size in excluded and file_sha256(path) in excluded[size]:
                problems.append(InputError(path, "one of the bundled sample images, which check the int8 copy "
                                                 "against float32"))
                continue
        try:
            image = read_image(path)
        except InputError as err:
            problems.append(err)
            continue
        spread = float(image.std())
        if spread < MIN_CALIBRATION_STD:
            problems.append(InputError(path, f"a nearly uniform image (pixel standard deviation {spread:.1f}), "
                                             "nothing to calibrate on"))
            continue
        chosen.append((path, image))
    chosen.sort(key=lambda item: str(item[0]))
    return [image for _, image in chosen], [path for path, _ in chosen], problems


def calibration_images(inputs: Iterable[str | Path], count: int = CALIBRATION_IMAGES,
                       seed: int = 0) -> tuple[list[np.ndarray], list[InputError]]:
    """The images of :func:`calibration_set`, and the files skipped."""
    images, _, problems = calibration_set(inputs, count, seed)
    return images, problems


class _Calibration(quantization.CalibrationDataReader):
    """Feeds ONNX Runtime's calibrator one prepared image at a time."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"image": batch}


@contextlib.contextmanager
def _temporary_files_in(folder: Path) -> Iterator[None]:
    """Point :mod:`tempfile`'s default folder at ``folder`` (ONNX Runtime's quantiser takes no folder)."""
    with _TEMPDIR_LOCK:
        before, tempfile.tempdir = tempfile.tempdir, str(folder)
        try:
            yield
        finally:
            tempfile.tempdir = before


def quantize_onnx(source: str | Path, out: str | Path, images: Iterable[np.ndarray], *,
                  weights_sha256: str | None = None, calibration: Mapping[str, Any] | None = None) -> int:
    """Write an int8 copy of the float32 ONNX model ``source`` to ``out``, calibrated on ``images``.

    Every intermediate file (ONNX Runtime's included) lives in a scratch folder beside ``out``, which a
    killed process leaves for the next quantisation there to remove; ``out`` appears whole or not at all.

    Args:
        source: an ``.onnx`` file written by :func:`skinnet.inference.onnx.export_onnx`.
        out: the int8 ``.onnx`` file; it keeps ``source``'s config and records its precision, the
            calibration (the number of images and ``calibration``) and ``weights_sha256`` in its metadata.
        images: RGB uint8 images of any size, prepared as inference prepares them (resize, colour constancy,
            normalisation) by the config stored in ``source``. A few dozen typical images suffice; they set
            each activation's range (min-max).
        weights_sha256: the SHA-256 of the weights file ``source`` was exported from (checked on load).
        calibration: what else to record about the calibration images (e.g. their seed and file names).

    Returns:
        The number of calibration images used.

    Raises:
        ValueError: no calibration image was given.
        ModelFileError: ``source`` holds no skinnet config.
    """
    out = Path(out)
    config = stored_config({entry.key: entry.value for entry in onnx.load(str(source)).metadata_props}, source)
    # prepared exactly as inference prepares them, so that the calibrated ranges are the ones met in use
    batches = [prepare_input(resize_image(image, config.data.image_size)[None], config.data) for image in images]
    if not batches:
        raise ValueError("no calibration images: int8 quantisation needs a few dozen typical images")
    record = {"images": len(batches), **(calibration or {})}
    with scratch_folder(out.parent) as scratch, _temporary_files_in(scratch):
        prepared, result = scratch / "prepared.onnx", scratch / out.name
        # Folds constants and fuses batch norms first, as ONNX Runtime recommends before quantising. Symbolic
        # shape inference is skipped: the image's height and width are free, which it cannot resolve.
        preprocessing.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(
            str(prepared), str(result), _Calibration(batches), quant_format=quantization.QuantFormat.QDQ,
            per_channel=True, activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, calibrate_method=quantization.CalibrationMethod.MinMax)
        graph = onnx.load(str(result))
        meta = {entry.key: entry for entry in graph.metadata_props}
        entries = [(PRECISION_KEY, "int8"), (CALIBRATION_KEY, json.dumps(record))]
        if weights_sha256:
            entries.append((WEIGHTS_KEY, weights_sha256))
        for key, value in entries:
            entry = meta[key] if key in meta else graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(result))
        os.replace(result, out)
    return len(batches)


def int8_metadata(path: str | Path) -> dict[str, str]:
    """An ONNX file's metadata (``key -> value``), read without building a session.

    Raises:
        ModelFileError: the file cannot be read as ONNX (truncated or damaged).
    """
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends: a truncated or damaged file
        raise ModelFileError(f"{path}: not a readable ONNX file, truncated or damaged ({type(err).__name__})"
                             ) from err
    return {entry.key: entry.value for entry in graph.metadata_props}


def int8_problem(path: str | Path, weights_sha256: str) -> str | None:
    """Why the file at ``path`` is not the int8 copy of the weights whose SHA-256 is ``weights_sha256``;
    ``None`` where it is."""
    try:
        meta = int8_metadata(path)
    except ModelFileError as err:
        return str(err).removeprefix(f"{path}: ")
    if CONFIG_KEY not in meta:
        return f"not an ONNX file exported by skinnet (no {CONFIG_KEY} metadata; truncated?)"
    precision = meta.get(PRECISION_KEY, "float32")
    if precision != "int8":
        return f"a {precision[:40]} ONNX file, not an int8 copy"
    recorded = meta.get(WEIGHTS_KEY)
    if not recorded:
        return f"records no weights SHA-256 ({WEIGHTS_KEY}; made by an older skinnet)"
    if recorded != weights_sha256:
        return f"the int8 copy of other weights (SHA-256 {recorded[:16]}..., not {weights_sha256[:16]}...)"
    return None


def packaged_int8(weights: str | Path) -> Path | None:
    """The package's int8 copy when ``weights`` is the shipped model and the install has the copy, else ``None``.

    Raises:
        ModelFileError: the packaged copy is not the shipped weights' (damaged, or not regenerated with a new
            model): one line naming the packaged file.
    """
    packaged = packaged_int8_path()
    if packaged is None or not is_shipped_model(weights):
        return None
    problem = int8_problem(packaged, file_sha256(weights))
    if problem is not None:
        raise ModelFileError(f"{packaged}: {problem}: not the int8 copy of the shipped {Path(weights).name}; "
                             "reinstall skinnet, or regenerate it with scripts/make_packaged_int8.sh")
    return packaged


def int8_path_for(weights: Path) -> Path:
    """Where :func:`cached_int8` keeps the int8 copy of ``weights``."""
    # calibration_images draws the same images from the same files, count and seed: their names key the file
    names = ",".join(path.name for path in find_images([SAMPLE_IMAGES]))
    return onnx_path_for(weights, f"int8 {QUANTIZE_REVISION} {CALIBRATION_IMAGES} {names}")


def cached_int8(weights: Path) -> Path:
    """The int8 ONNX copy of a weights file, calibrated on the bundled ISIC sample images.

    Quantised on first use (a few seconds; written atomically, so a process that races another finds a whole
    file or none), then reused: the cache key holds the weights, the exporter's and quantiser's revisions and
    the calibration images' names. A cached file that is not the copy of ``weights`` (truncated, another
    model's, float32: :func:`int8_problem`) is made again, with a warning. To calibrate on images of your own:
    ``skinnet export --int8 --calibration``.
    """
    int8_file = int8_path_for(weights)
    sha256 = file_sha256(weights)
    if int8_file.exists():
        problem = int8_problem(int8_file, sha256)
        if problem is None:
            return int8_file
        warnings.warn(f"{int8_file}: {problem}; quantising {weights} again", stacklevel=2)
    images, files, problems = calibration_set([SAMPLE_IMAGES])
    if problems:  # the package's own files: a damaged install, refused rather than calibrated on fewer
        raise problems[0]
    quantize_onnx(cached_export(weights), int8_file, images, weights_sha256=sha256,
                  calibration={"seed": 0, "files": [path.name for path in files]})
    return int8_file


def int8_copy(weights: Path) -> Path:
    """The int8 copy of a weights file: the package's for the shipped model (no quantisation), else the cache's."""
    return packaged_int8(weights) or cached_int8(weights)


def mask_agreement(float32_file: str | Path, int8_file: str | Path, images: Iterable[np.ndarray]) -> float:
    """Mean Dice between the two ONNX files' masks (one view, the model's threshold, no post-processing)."""
    float32, int8 = OnnxBackend(float32_file), OnnxBackend(int8_file)
    data, threshold = float32.config.data, float32.config.inference.threshold
    scores = []
    for image in images:
        batch = prepare_input(resize_image(image, data.image_size)[None], data)
        a, b = float32(batch)[0] > threshold, int8(batch)[0] > threshold
        total = int(a.sum()) + int(b.sum())
        scores.append(1.0 if total == 0 else 2 * int((a & b).sum()) / total)
    return float(np.mean(scores))


__all__ = ["CALIBRATION_IMAGES", "CALIBRATION_KEY", "PACKAGED_INT8", "WEIGHTS_KEY", "cached_int8",
           "calibration_images", "calibration_set", "int8_copy", "int8_metadata", "int8_path_for", "int8_problem",
           "mask_agreement", "packaged_int8", "quantize_onnx"]
