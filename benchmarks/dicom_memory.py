"""Peak memory of reading the largest DICOM files the limits allow, and of hostile ones, one process each.

Each input is a bundled ISIC sample resized up to the shape named and stored as DICOM the way the test
factory does (tests/dicom_factory.py): every pixel encoding the reader decodes, at 100 megapixels (50 at 16
bits, the limit of decoded samples; 60 for JPEG-LS and JPEG 2000, whose decoders hold more), and the hostile
files the limits exist for. Each file is read by a fresh
process with :func:`skinnet.data.dicom.read_dicom`; its peak resident memory above its state before the read
(after importing pydicom and numpy) is read from the kernel (``VmHWM`` in ``/proc/self/status``, reset first
through ``/proc/self/clear_refs``).

    python benchmarks/dicom_memory.py [--only NAME ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from skinnet.data.samples import SAMPLE_IMAGES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import dicom_factory  # the test factory builds the files

SAMPLE = sorted(SAMPLE_IMAGES.glob("*.jpg"))[0]
PROBE = """
import json, sys, time
import numpy, pydicom, pydicom.pixels
from skinnet.data.dicom import read_dicom
from skinnet.data.io import InputError

def rss(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

with open("/proc/self/clear_refs", "w") as handle:  # restart the peak (VmHWM) from the current RSS
    handle.write("5")
before, started = rss("VmHWM:"), time.perf_counter()
try:
    shape, error = list(read_dicom(sys.argv[1]).pixels.shape), None
except InputError as err:
    shape, error = None, str(err)
print(json.dumps({"peak": rss("VmHWM:") - before, "seconds": time.perf_counter() - started, "shape": shape,
                  "error": error}))
"""


def peak_of_reading(path: Path) -> dict:
    """Read ``path`` in a fresh process: ``{"peak": bytes above the state before, "seconds", "shape",
    "error"}``."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True,
                            timeout=600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def photo(width: int, height: int) -> np.ndarray:
    with Image.open(SAMPLE) as image:
        return np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))


def inputs(folder: Path) -> dict[str, tuple[str, Callable[[], Path]]]:
    """name -> (what it is, a function writing it into ``folder``)."""
    build = dicom_factory.build_dicom
    # The largest images: by area, by decoded samples (16 bits), and for the decoders that hold more.
    big, half, hungry = (10_000, 10_000), (8_000, 6_250), (8_000, 7_500)
    return {
        "native-rgb": ("native RGB, 8 bits, 10000x10000",
                       lambda: build(folder / "native-rgb.dcm", photo(*big))),
        "native-ybr": ("native YBR_FULL, 8 bits, 10000x10000",
                       lambda: build(folder / "native-ybr.dcm", photo(*big), photometric="YBR_FULL")),
        "native-422": ("native YBR_FULL_422, 8 bits, 10000x10000",
                       lambda: build(folder / "native-422.dcm", photo(*big), photometric="YBR_FULL_422")),
        "native-16": ("native RGB, 16 bits, 8000x6250",
                      lambda: build(folder / "native-16.dcm", photo(*half), bits=16)),
        "deflated": ("deflated native RGB, 8 bits, 10000x10000",
                     lambda: dicom_factory.deflated(build(folder / "plain.dcm", photo(*big)),
                                                    folder / "deflated.dcm")),
        "jpeg": ("JPEG baseline (YBR_FULL_422), 10000x10000",
                 lambda: build(folder / "jpeg.dcm", photo(*big), syntax="jpeg")),
        "jpeg-ls": ("JPEG-LS lossless, 8000x7500",
                    lambda: build(folder / "jpeg-ls.dcm", photo(*hungry), syntax="jpeg-ls")),
        "rle": ("RLE lossless, 10000x10000", lambda: build(folder / "rle.dcm", photo(*big), syntax="rle")),
        "jpeg2000": ("JPEG 2000 lossless, 8000x7500",
                     lambda: build(folder / "jpeg2000.dcm", photo(*hungry), syntax="jpeg2000")),
        "bomb": ("deflate bomb: 2 GiB of zeros in a private element (2 MB file)",
                 lambda: dicom_factory.deflated(build(folder / "small.dcm", photo(256, 256)), folder / "bomb.dcm",
                                                zeros=2 << 30)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="only these inputs (names as in the table)")
    parser.add_argument("--keep", help="write the inputs here instead of a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print("| input | name | file size | seconds | peak memory above the baseline | result |\n"
              "|---|---|---:|---:|---:|---|")
        for name, (what, make) in inputs(folder).items():
            if args.only and name not in args.only:
                continue
            path = make()
            probe = peak_of_reading(path)
            result = f"{probe['shape'][1]}x{probe['shape'][0]} RGB" if probe["shape"] else probe["error"][-70:]
            print(f"| {what} | {name} | {path.stat().st_size / 1e6:.1f} MB | {probe['seconds']:.1f} | "
                  f"{probe['peak'] / 1e9:.2f} GB | {result} |", flush=True)
            for other in folder.glob("*.dcm"):
                if not args.keep:
                    other.unlink()


if __name__ == "__main__":
    main()
