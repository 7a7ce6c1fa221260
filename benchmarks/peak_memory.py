"""Peak memory of ``skinnet predict`` on the largest inputs the limits allow, one process per input.

Each input is a bundled ISIC sample resized up to the shape named (a real lesion, so post-processing and the
outline see real structure), saved as JPEG or PNG. Each is predicted by a fresh ``skinnet predict`` process
(the shipped model, one worker, with the overlay) and its peak resident memory is read from the kernel
(``wait4``'s ``ru_maxrss``). A 256x256 sample gives the baseline: Python, torch and the model alone.

    python benchmarks/peak_memory.py [--model M] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from skinnet.data.checks import MAX_ASPECT, MAX_PIXELS, MAX_SIDE
from skinnet.data.samples import SAMPLE_IMAGES

SAMPLE = sorted(SAMPLE_IMAGES.glob("*.jpg"))[0]
# (width, height, format): the baseline, the largest square, the longest side at the area limit, the widest.
SHAPES = [(256, 256, "JPEG"), (10_000, 10_000, "JPEG"), (10_000, 10_000, "PNG"),
          (MAX_SIDE, MAX_PIXELS // MAX_SIDE, "JPEG"), (MAX_SIDE, MAX_SIDE // MAX_ASPECT, "PNG")]


def make_input(folder: Path, width: int, height: int, fmt: str) -> Path:
    path = folder / f"lesion_{width}x{height}.{'jpg' if fmt == 'JPEG' else 'png'}"
    with Image.open(SAMPLE) as image:
        image.convert("RGB").resize((width, height), Image.BILINEAR).save(path, fmt)
    return path


def peak_of(command: list[str]) -> tuple[int, float, int]:
    """(exit status, seconds, peak resident set in bytes) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.stderr.write(process.stderr.read().decode() if process.stderr else "")
    return process.returncode, time.perf_counter() - started, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--keep", help="write the inputs and masks here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print("| input | file size | exit | seconds | peak RSS |\n|---|---:|---:|---:|---:|")
        for width, height, fmt in SHAPES:
            path = make_input(folder, width, height, fmt)
            command = [sys.executable, "-m", "skinnet", "predict", str(path), "--out", str(folder / "out"),
                       "--workers", "1", "--overlay", "--overwrite"]
            command += ["--model", args.model] if args.model else []
            status, seconds, peak = peak_of(command)
            print(f"| {width}x{height} {fmt} | {path.stat().st_size / 1e6:.1f} MB | {status} | {seconds:.1f} | "
                  f"{peak / 1e9:.2f} GB |", flush=True)


if __name__ == "__main__":
    main()
