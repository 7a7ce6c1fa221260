"""Argument types and helpers the command groups share: each bad value is refused by argparse in one line."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from skinnet.config import BACKEND_CHOICES, PRECISION_CHOICES, Config, ConfigError, load_config
from skinnet.data.spacing import SPACING_RANGE, spacing_in_range


def fold_or_all(text: str) -> str:
    if text != "all" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a fold number or 'all', got {text!r}")
    return text


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def pixel_spacing(text: str) -> float | tuple[float, float]:
    """``"0.02"`` (square pixels) or ``"0.02,0.025"`` (row, column), in mm, within the bounds of
    :mod:`skinnet.data.spacing`."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) not in (1, 2) or not all(spacing_in_range(value) for value in values):
        raise argparse.ArgumentTypeError(f"expected mm per pixel from {SPACING_RANGE}, e.g. 0.02, or ROW,COLUMN, "
                                         f"got {text!r}")
    return values[0] if len(values) == 1 else values


def fold_list(text: str) -> list[int]:
    """``"0,2,4"`` → ``[0, 2, 4]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--precision`` and its alias ``--int8``, as ``predict`` and ``serve`` take them.

    Both default to auto (:func:`skinnet.inference.segmenter.choose_runtime`): the shipped model on a CPU runs
    its packaged int8 copy on ONNX Runtime, everything else torch float32.
    """
    parser.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                        help="torch, or onnx: ONNX Runtime, faster on a CPU (default auto: onnx for int8, else "
                             "torch)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                           help="int8: the model's int8 copy on ONNX Runtime, about 2x faster on a CPU with the "
                                "same out-of-fold Dice (the shipped model's ships in the package; other models "
                                "are quantised on first use and cached). Default auto: int8 for the shipped "
                                "model on a CPU (with the onnx extra), float32 otherwise; float32 with the "
                                "default backend runs torch (docs/how-to/archive_prediction.md)")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8", default="auto",
                           help="the same as --precision int8")


def run_arguments(args: argparse.Namespace) -> tuple[Config, str, Path]:
    """The config (file + overrides), the data folder and the run folder of ``train`` and ``cv``."""
    config = load_config(args.config, args.overrides)
    data = args.data or config.data.root
    if not data:
        raise ConfigError("no data folder: pass --data DIR or set data.root in the config")
    return config, data, Path(args.out or Path("runs") / Path(args.config).stem)


def report_problems(problems: list[str]) -> int:
    """Print every problem of a batch at the end; non-zero exit status when there was any."""
    if not problems:
        return 0
    print(f"\n{len(problems)} file(s) failed:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1
