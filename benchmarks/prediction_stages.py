"""Which stage of end-to-end prediction does not run in parallel: each stage alone, in 1 and in N threads.

``predict_files`` overlaps images in worker threads; that only helps where a stage releases Python's lock
or waits on a device. This times each stage of one image's path on its own, over the same images, first
in one thread and then in ``--threads`` threads at once (in turns, the best of three passes), and prints
the speed-up of each (N threads at full use give about N, a stage that holds the lock gives about 1):

- decode: read the JPEG (Pillow);
- prepare: resize to the network's input and normalise;
- network: the backend on the prepared batch (with the model's TTA: its flip views in one call, averaged);
- resize back: the lesion probability to the image's size (OpenCV);
- mask: threshold, empty-mask fallback and post-processing at the image's size (scipy.ndimage);
- write: encode the mask PNG and write it atomically.

    python benchmarks/prediction_stages.py [--device cuda] [--backend torch] [--images 64] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from skinnet.data.atomic import write_mask
from skinnet.data.cache import resize_image
from skinnet.data.io import read_image
from skinnet.data.normalize import prepare_input
from skinnet.inference.model_spec import ModelSpec
from skinnet.inference.predictor import FLIPS, flip

sys.path.insert(0, str(Path(__file__).resolve().parent))
from archive_prediction import make_images  # the same 1024x768 JPEGs as the end-to-end benchmark


def stage_functions(segmenter: Any, out_dir: Path) -> list[tuple[str, Callable[[Any], Any]]]:
    """Each stage as a function of the previous stage's result (the first takes a file path)."""
    size, data = segmenter.config.data.image_size, segmenter.config.data

    def network(batch: np.ndarray) -> np.ndarray:  # as Segmenter: the flip views' mean at the input size
        if not segmenter.tta:
            return segmenter.backend(batch)[0]
        views = np.concatenate([flip(batch, axes, plane=2) for axes in FLIPS])
        probabilities = np.split(segmenter.backend(np.ascontiguousarray(views)), len(FLIPS))
        return np.mean([flip(p, axes, plane=1) for p, axes in zip(probabilities, FLIPS, strict=True)],
                       axis=0)[0]

    def resize_back(probability: np.ndarray) -> np.ndarray:  # every benchmark image is 1024x768
        return cv2.resize(probability, (1024, 768), interpolation=cv2.INTER_LINEAR)

    def write(item: tuple[int, np.ndarray]) -> None:
        write_mask(out_dir / f"{item[0]:05d}.png", item[1])

    return [("decode", read_image),
            ("prepare", lambda image: prepare_input(resize_image(image, size)[None], data)),
            ("network", network),
            ("resize back", resize_back),
            ("mask", segmenter.to_mask),
            ("write", write)]


def timed(function: Callable[[Any], Any], items: Sequence[Any], threads: int) -> tuple[float, list[Any]]:
    """Wall seconds to apply ``function`` to every item with ``threads`` threads, and the results in order."""
    started = time.perf_counter()
    if threads == 1:
        results = [function(item) for item in items]
    else:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(function, items))
    return time.perf_counter() - started, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the parallel run")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    args = parser.parse_args(argv)
    segmenter = ModelSpec(model=args.model, device=args.device, backend=args.backend, threads=1).load()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.images)
        paths = sorted(folder.glob("*.jpg"))
        best: dict[tuple[str, int], float] = {}
        for repeat in range(3):  # in turns, the best of three: the first pass also pays for warming up
            for threads_run in (1, args.threads):
                items: list[Any] = paths
                for name, function in stage_functions(segmenter, Path(tmp) / f"out{repeat}-{threads_run}"):
                    if name == "write":
                        items = list(enumerate(items))
                    seconds, items = timed(function, items, threads_run)
                    best[name, threads_run] = min(seconds, best.get((name, threads_run), seconds))
    one = {name: seconds for (name, threads), seconds in best.items() if threads == 1}
    many = {name: seconds for (name, threads), seconds in best.items() if threads == args.threads}
    print(f"{args.images} JPEGs of 1024x768, device {args.device}, backend {args.backend}, TTA {segmenter.tta}; "
          f"{os.cpu_count()} CPU cores\n")
    print(f"| stage | ms / image, 1 thread | ms / image, {args.threads} threads | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    for name in one:
        print(f"| {name} | {1000 * one[name] / args.images:.1f} | {1000 * many[name] / args.images:.1f} | "
              f"{one[name] / many[name]:.2f} |")
    total_one, total_many = sum(one.values()), sum(many.values())
    print(f"| all stages | {1000 * total_one / args.images:.1f} | {1000 * total_many / args.images:.1f} | "
          f"{total_one / total_many:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
