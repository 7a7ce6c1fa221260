"""Static int8 quantisation of an exported ONNX model, for faster inference on a CPU.

ONNX Runtime's static quantisation (QDQ format: weights int8 per output channel, activations uint8 with
ranges calibrated on real images) runs the network about twice as fast on an x86 CPU as float32. The masks
change a little, so it is an option, not the default: ``benchmarks/int8_oof.py`` measures what it costs out
of fold (docs/results/speed.md, "int8").
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from skinnet.data.cache import resize_image
from skinnet.data.io import InputError, atomic_path, read_image
from skinnet.data.layout import find_images
from skinnet.data.normalize import prepare_input
from skinnet.data.samples import SAMPLE_IMAGES
from skinnet.extras import require
from skinnet.inference.onnx import PRECISION_KEY, cached_export, onnx_path_for, stored_config

onnx = require("onnx", "onnx", "ONNX support")
quantization = require("onnxruntime.quantization", "onnx", "ONNX support")
preprocessing = require("onnxruntime.quantization.shape_inference", "onnx", "ONNX support")

# What calibrated the file, kept beside skinnet.inference.onnx's config and precision keys.
CALIBRATION_KEY = "skinnet_calibration"
# Calibration images used by default: enough for stable min-max ranges, and a few seconds to calibrate.
CALIBRATION_IMAGES = 64
# Raise it when quantize_onnx writes a different graph, so that cached int8 files of older versions are not
# reused (the cache key of cached_int8 also holds the number of calibration images and their files' names).
QUANTIZE_REVISION = 1


def calibration_images(inputs: Iterable[str | Path], count: int = CALIBRATION_IMAGES,
                       seed: int = 0) -> tuple[list[np.ndarray], list[InputError]]:
    """Up to ``count`` images drawn (seeded) from the image files and folders ``inputs``.

    Returns:
        The images read, and the files that could not be read (each with its reason); those are skipped.

    Raises:
        LayoutError: an input does not exist, or holds no image.
    """
    files = find_images(inputs)
    chosen = sorted(random.Random(seed).sample(files, min(count, len(files))))
    images: list[np.ndarray] = []
    problems: list[InputError] = []
    for path in chosen:
        try:
            images.append(read_image(path))
        except InputError as err:
            problems.append(err)
    return images, problems


class _Calibration(quantization.CalibrationDataReader):
    """Feeds ONNX Runtime's calibrator one prepared image at a time."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"image": batch}


def quantize_onnx(source: str | Path, out: str | Path, images: Iterable[np.ndarray]) -> int:
    """Write an int8 copy of the float32 ONNX model ``source`` to ``out``, calibrated on ``images``.

    Args:
        source: an ``.onnx`` file written by :func:`skinnet.inference.onnx.export_onnx`.
        out: the int8 ``.onnx`` file (written atomically); it keeps ``source``'s config and records its
            precision and the number of calibration images in its metadata.
        images: RGB uint8 images of any size, prepared as inference prepares them (resize, colour constancy,
            normalisation) by the config stored in ``source``. A few dozen typical images suffice; they set
            each activation's range (min-max).

    Returns:
        The number of calibration images used.

    Raises:
        ValueError: no calibration image was given.
        ModelFileError: ``source`` holds no skinnet config.
    """
    config = stored_config({entry.key: entry.value for entry in onnx.load(str(source)).metadata_props}, source)
    # prepared exactly as inference prepares them, so that the calibrated ranges are the ones met in use
    batches = [prepare_input(resize_image(image, config.data.image_size)[None], config.data) for image in images]
    if not batches:
        raise ValueError("no calibration images: int8 quantisation needs a few dozen typical images")
    with tempfile.TemporaryDirectory() as scratch, atomic_path(out) as tmp:
        prepared = Path(scratch) / "prepared.onnx"
        # Folds constants and fuses batch norms first, as ONNX Runtime recommends before quantising. Symbolic
        # shape inference is skipped: the image's height and width are free, which it cannot resolve.
        preprocessing.quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantization.quantize_static(
            str(prepared), str(tmp), _Calibration(batches), quant_format=quantization.QuantFormat.QDQ,
            per_channel=True, activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8, calibrate_method=quantization.CalibrationMethod.MinMax)
        graph = onnx.load(str(tmp))
        meta = {entry.key: entry for entry in graph.metadata_props}
        for key, value in ((PRECISION_KEY, "int8"), (CALIBRATION_KEY, json.dumps({"images": len(batches)}))):
            entry = meta[key] if key in meta else graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(tmp))
    return len(batches)


def int8_path_for(weights: Path) -> Path:
    """Where :func:`cached_int8` keeps the int8 copy of ``weights``."""
    # calibration_images draws the same images from the same files, count and seed: their names key the file
    names = ",".join(path.name for path in find_images([SAMPLE_IMAGES]))
    return onnx_path_for(weights, f"int8 {QUANTIZE_REVISION} {CALIBRATION_IMAGES} {names}")


def cached_int8(weights: Path) -> Path:
    """The int8 ONNX copy of a weights file, calibrated on the bundled ISIC sample images.

    Quantised on first use (a few seconds; written atomically, so a process that races another finds a whole
    file or none), then reused: the cache key holds the weights, the exporter's and quantiser's revisions and
    the calibration images' names. To calibrate on images of your own: ``skinnet export --int8 --calibration``.
    """
    int8_file = int8_path_for(weights)
    if not int8_file.exists():
        images, problems = calibration_images([SAMPLE_IMAGES])
        if problems:  # the package's own files: a damaged install, refused rather than calibrated on fewer
            raise problems[0]
        quantize_onnx(cached_export(weights), int8_file, images)
    return int8_file
