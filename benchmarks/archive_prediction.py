"""End-to-end batch prediction: one image after another (as ``skinnet predict`` ran before archive mode)
against the local executor's worker threads (overlapping decoding and writing with the network, and on a
GPU batches of images in float16 autocast), measured side by side in one run.

Each run is ``predict_files`` on a folder of 1024x768 JPEGs (the bundled ISIC samples resized up): decode,
segment (resize, network, resize back, post-processing) and write each mask PNG, into a fresh folder.
The configurations take turns, repeat after repeat, so that a change in the machine's load hits all of
them alike; the table gives the median of the repeats and the speed-up over the sequential run of the
same repeats. Model loading is not timed. ``--int8`` adds a pipelined row whose network is the model quantised
to int8 (as ``skinnet predict --int8`` runs it: for the shipped model the packaged copy, for another the copy
calibrated on the bundled samples): a different model, whose cost in accuracy ``benchmarks/int8_oof.py``
measures. ``--defaults`` times instead what ``skinnet predict`` runs with no options (2 workers, one network
thread each, backend and precision auto: the packaged int8 copy on a CPU) against the same model through ONNX
Runtime in float32 and through torch (the default before), each as a multiple of the ONNX float32 row.

    python benchmarks/archive_prediction.py [--backend onnx] [--images 40] [--repeats 5] [--model M] [--int8]
    python benchmarks/archive_prediction.py --defaults [--images 20] [--repeats 2]
    python benchmarks/archive_prediction.py --device cuda --backend torch --images 400 [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from skinnet.batch.run import predict_files
from skinnet.data.samples import SAMPLE_IMAGES
from skinnet.inference.model_spec import ModelSpec

# (name, worker threads, network threads, images per forward pass, backend, precision); the first is the
# baseline. Backend None: --backend's.
Config = tuple[str, int, int | None, int, str | None, str]
INT8_ROW = "pipelined, 2 workers, int8 network 1 thread each"
CPU_CONFIGS: list[Config] = [("sequential (1 image at a time, network on all cores)", 1, None, 1, None, "float32"),
                             ("pipelined, 2 workers, network 1 thread each", 2, 1, 1, None, "float32"),
                             ("pipelined, 2 workers, network on all cores each", 2, None, 1, None, "float32")]
# `skinnet predict`'s defaults on a CPU (2 workers, cores / 2 threads each), as options select them
DEFAULT_CONFIGS: list[Config] = [
    ("--backend onnx --precision float32", 2, None, 1, "onnx", "float32"),
    ("no options (auto)", 2, None, 1, "auto", "auto"),
    ("--backend torch (the default before)", 2, None, 1, "torch", "float32")]


def gpu_configs(batch_size: int, cores: int) -> list[Config]:
    """On a GPU the network is rarely the bottleneck: decoding and writing on the CPU cores are."""
    return [("sequential (1 image at a time)", 1, None, 1, None, "float32")] + [
        (f"pipelined, {workers} workers, batch {batch_size}", workers, None, batch_size, None, "float32")
        for workers in sorted({max(2, cores // 2), max(2, cores)})]


def make_images(folder: Path, count: int, size: tuple[int, int] = (1024, 768)) -> None:
    """``count`` JPEGs of ``size`` made from the bundled samples (cycled)."""
    folder.mkdir(parents=True)
    sources = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    for index in range(count):
        image = Image.open(sources[index % len(sources)]).convert("RGB").resize(size, Image.BICUBIC)
        image.save(folder / f"img{index:04d}.jpg", quality=92)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (then the pipelined rows batch images)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass on a GPU")
    parser.add_argument("--int8", action="store_true", help="add a row with the network quantised to int8 (CPU)")
    parser.add_argument("--defaults", action="store_true",
                        help="time `skinnet predict`'s default options against ONNX float32 and torch (CPU)")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    on_gpu = args.device.startswith("cuda")
    configs = gpu_configs(args.batch_size, cores) if on_gpu else list(CPU_CONFIGS)
    if args.defaults:
        # predict's own default of --threads: the cores divided by its 2 workers
        configs = [(name, workers, max(1, cores // workers), batch, backend, precision)
                   for name, workers, _, batch, backend, precision in DEFAULT_CONFIGS]
    if args.int8:
        configs.append((INT8_ROW, 2, 1, 1, "onnx", "int8"))
    seconds: dict[str, list[float]] = {name: [] for name, *_ in configs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.images)
        # the int8 row runs what `skinnet predict --int8` runs (the packaged copy for the shipped model)
        segmenters = {name: ModelSpec(model=args.model, device=args.device, threads=threads or cores,
                                      backend=backend or args.backend, batch_size=batch,
                                      precision=precision).load()
                      for name, _, threads, batch, backend, precision in configs}
        for repeat in range(args.repeats + 1):  # the first round warms up (ONNX export, caches, cuDNN)
            for name, workers, threads, batch, *_ in configs:
                torch.set_num_threads(threads or cores)  # for the torch backend; ONNX sessions have their own
                out = Path(tmp) / f"out{repeat}-{workers}-{threads}-{batch}"
                started = time.perf_counter()
                report = predict_files(segmenters[name], [folder], out, workers=workers, batch_size=batch)
                elapsed = time.perf_counter() - started
                assert len(report.written) == args.images and not report.failed, report.failed
                if repeat:
                    seconds[name].append(elapsed)
    base = statistics.median(seconds[configs[0][0]])
    where = torch.cuda.get_device_name(args.device) + ", float16 autocast" if on_gpu else "no GPU"
    backend = "per row" if args.defaults else args.backend
    print(f"{cores} CPU cores; {where}; backend {backend}; {args.images} JPEGs of 1024x768; median of "
          f"{args.repeats} repeats, taken in turns\n")
    first = "x first row" if args.defaults else "x sequential"
    print(f"| {'executor':<56} | {'images/s':>8} | {'s / image':>9} | {first:>12} | "
          f"{'each repeat, ' + first:<28} |")
    print(f"|{'-' * 58}|{'-' * 9}:|{'-' * 10}:|{'-' * 13}:|{'-' * 30}|")
    for name, *_ in configs:
        median = statistics.median(seconds[name])
        each = " ".join(f"{b / s:.2f}" for s, b in zip(seconds[name], seconds[configs[0][0]], strict=True))
        label = f"predict {name}: {segmenters[name].runtime}" if args.defaults else name
        print(f"| {label:<56} | {args.images / median:8.2f} | {median / args.images:9.4f} | "
              f"{base / median:12.2f} | {each:<28} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
