"""End-to-end batch prediction: one image after another (as ``skinnet predict`` ran before archive mode)
against worker threads and worker processes (decoding and writing overlapped with the network, and on a
GPU batches of images in float16 autocast), measured side by side in one run, with the network's ceiling.

Each run is ``predict_files`` on a folder of JPEGs (the bundled ISIC samples resized up, 1024x768 unless
``--size``): decode, segment (resize, network, resize back, post-processing) and write each mask PNG, into
a fresh folder. The configurations take turns, repeat after repeat, so that a change in the machine's load
hits all of them alike; the table gives the median of the repeats and the speed-up over the sequential run
of the same repeats. Model loading is not timed, nor is starting the worker processes of a row (once per
``skinnet predict``: the fork server and each worker's model), which is printed apart.

The ceiling is the network alone, in this process, on batches prepared beforehand and held in memory (on
the CPU with all cores, on a GPU in float16 autocast): the most that any pipeline around it could reach.
Each row's "of ceiling" is its images/s over the ceiling's; on a CPU, rows whose workers run networks
side by side can exceed it a little (one network call on all cores does not scale perfectly).

``--int8`` adds two rows (threads and processes) whose network is the model quantised to int8 (as
``skinnet predict --int8`` runs it: the packaged copy for the shipped model): a different model, whose cost
in accuracy ``benchmarks/int8_oof.py`` measures. ``--draft`` adds a row with JPEG draft decoding
(``skinnet predict --jpeg-draft``), and ``--compare-cpu K`` prints each row's mean and lowest Dice against
masks made on the CPU in float32, one image at a time, for the first K images (the agreement of a GPU path
with the CPU one).

    python benchmarks/archive_prediction.py [--backend onnx] [--images 40] [--repeats 5] [--model M] [--int8]
    python benchmarks/archive_prediction.py --device cuda --backend torch --images 2000 --workers 16 \\
        [--batch-size 32] [--draft] [--compare-cpu 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from skinnet.batch.processes import ProcessExecutor
from skinnet.batch.run import predict_files
from skinnet.data.io import DraftReader, read_image, read_mask
from skinnet.data.samples import SAMPLE_IMAGES
from skinnet.inference.model_spec import ModelSpec
from skinnet.metrics import image_metrics


@dataclass(frozen=True)
class Row:
    """One configuration: ``executor`` "threads" (``workers`` threads; 1: sequential) or "processes"."""

    name: str
    workers: int
    threads: int | None  # network threads (None: all cores)
    batch: int
    executor: str = "threads"
    network: str = "auto"  # processes: where the network runs ("workers" or "main")
    device_masks: bool | None = None
    draft: bool = False
    int8: bool = False
    backend: str | None = None  # None: --backend's (onnx for an int8 row)
    precision: str | None = None  # None: float32 (int8 for an int8 row)


INT8_ROWS = [Row("threads, 2 workers, int8 network 1 thread each", 2, 1, 1, int8=True),
             Row("processes, 2 workers, int8 network 1 thread each", 2, 1, 1, "processes", "workers", int8=True)]
CPU_ROWS = [Row("sequential (1 image at a time, network on all cores)", 1, None, 1),
            Row("threads, 2 workers, network 1 thread each", 2, 1, 1),
            Row("threads, 2 workers, network on all cores each", 2, None, 1),
            Row("processes, 1 worker, network 1 thread", 1, 1, 1, "processes", "workers"),
            Row("processes, 2 workers, network 1 thread each", 2, 1, 1, "processes", "workers"),
            Row("processes, 2 workers, network in the main process, all cores", 2, None, 1, "processes", "main")]


# `skinnet predict`'s defaults on a CPU (2 worker processes, cores / 2 network threads each), as options select
# them; --defaults times these, each as a multiple of the first (the model through ONNX Runtime, float32, in
# worker threads as predict ran it before processes became the default)
def default_rows(cores: int) -> list[Row]:
    threads = max(1, cores // 2)
    return [Row("predict --backend onnx --precision float32", 2, threads, 1, backend="onnx", precision="float32"),
            Row("predict with no options (auto: processes)", 2, threads, 1, "processes", "workers", backend="auto",
                precision="auto"),
            Row("predict --backend torch (the default before)", 2, threads, 1, backend="torch",
                precision="float32")]


def gpu_rows(batch_size: int, workers: int) -> list[Row]:
    """On a GPU the network is rarely the bottleneck: decoding and writing on the CPU cores are."""
    return [Row("sequential (1 image at a time)", 1, None, 1),
            Row(f"threads, {workers} workers, batch {batch_size}", workers, None, batch_size),
            Row(f"processes, {workers} workers, batch {batch_size}, network in main, masks on the GPU", workers,
                1, batch_size, "processes", "main", True),
            Row(f"processes, {workers} workers, batch {batch_size}, network in main, masks on the CPU", workers,
                1, batch_size, "processes", "main", False)]


def make_images(folder: Path, count: int, size: tuple[int, int] = (1024, 768)) -> None:
    """``count`` JPEGs of ``size`` made from the bundled samples (cycled: a repeat is a copy of the file)."""
    folder.mkdir(parents=True)
    sources = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    for index in range(count):
        path = folder / f"img{index:04d}.jpg"
        if index >= len(sources):
            shutil.copyfile(folder / f"img{index % len(sources):04d}.jpg", path)
            continue
        image = Image.open(sources[index]).convert("RGB").resize(size, Image.BICUBIC)
        image.save(path, quality=92)


def ceiling(segmenter: Any, folder: Path, batch_size: int, repeats: int, count: int = 256) -> float:
    """Images/s of the network alone on batches prepared beforehand from the first ``count`` images (the best
    of ``repeats`` passes)."""
    images = [read_image(path) for path in sorted(folder.glob("*.jpg"))[:count]]
    members = getattr(segmenter, "members", [segmenter])
    batches = [[member.network_inputs(images[start : start + batch_size]) for member in members]
               for start in range(0, len(images), batch_size)]
    best = float("inf")
    for _ in range(repeats + 1):  # the first pass warms up
        started = time.perf_counter()
        for prepared in batches:
            for member, batch in zip(members, prepared, strict=True):
                member.network(batch)
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def agreement(folder: Path, reference: Path, count: int) -> tuple[float, float]:
    """Mean and lowest DC of the masks in ``folder`` against ``reference``'s, over the first ``count``."""
    names = sorted(path.name for path in reference.glob("*_segmentation.png"))[:count]
    dcs = [image_metrics(read_mask(reference / name), read_mask(folder / name))["DC"] for name in names]
    return float(np.mean(dcs)), float(np.min(dcs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["torch", "onnx"], default="onnx")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (then the rows batch images)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass on a GPU")
    parser.add_argument("--workers", type=int, help="workers of the GPU rows (default: the CPU cores)")
    parser.add_argument("--size", default="1024x768", help="WIDTHxHEIGHT of the JPEGs (default 1024x768)")
    parser.add_argument("--int8", action="store_true", help="add a row with the network quantised to int8 (CPU)")
    parser.add_argument("--draft", action="store_true", help="add a row with JPEG draft decoding")
    parser.add_argument("--compare-cpu", type=int, default=0, metavar="K",
                        help="DC of each row's masks against float32 CPU masks, over the first K images")
    parser.add_argument("--defaults", action="store_true",
                        help="time `skinnet predict`'s default options against ONNX float32 and torch (CPU)")
    parser.add_argument("--rows", choices=["all", "processes"], default="all",
                        help="processes: only the process rows (the sequential and thread rows take long on "
                             "a GPU machine's many images)")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    size = tuple(int(side) for side in args.size.split("x"))
    on_gpu = args.device.startswith("cuda")
    rows = gpu_rows(args.batch_size, args.workers or cores) if on_gpu else list(CPU_ROWS)
    fastest = rows[2] if on_gpu else rows[4]
    if args.defaults:
        rows = default_rows(cores)
        fastest = rows[1]
    if args.rows == "processes":
        rows = [row for row in rows if row.executor == "processes"]
    if args.draft:
        rows.append(replace(fastest, name=fastest.name + ", JPEG drafts", draft=True))
    if args.int8:
        rows += INT8_ROWS
    seconds: dict[str, list[float]] = {row.name: [] for row in rows}
    network_share: dict[str, list[float]] = {row.name: [] for row in rows}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        make_images(folder, args.images, size)  # type: ignore[arg-type]
        # the int8 row runs what `skinnet predict --int8` runs (the packaged copy for the shipped model)
        specs = {row.name: ModelSpec(model=args.model, device=args.device, threads=row.threads or cores,
                                     backend=row.backend or ("onnx" if row.int8 else args.backend),
                                     batch_size=row.batch,
                                     precision=row.precision or ("int8" if row.int8 else None))
                 for row in rows}
        segmenters = {row.name: specs[row.name].load() for row in rows}
        network_batch = args.batch_size if on_gpu else 1
        alone = ModelSpec(model=args.model, device=args.device, threads=cores, backend=args.backend,
                          batch_size=network_batch).load()
        torch.set_num_threads(cores)
        top = ceiling(alone, folder, network_batch, max(1, args.repeats))
        last: dict[str, Path] = {}
        # each process row's workers start once, untimed like model loading; the start is reported apart
        executors = {row.name: ProcessExecutor(segmenters[row.name], specs[row.name], row.workers, row.network,
                                               row.device_masks) for row in rows if row.executor == "processes"}
        starts = {name: executor.start() for name, executor in executors.items()}
        for repeat in range(args.repeats + 1):  # the first round warms up (ONNX export, caches, cuDNN)
            for index, row in enumerate(rows):
                torch.set_num_threads(row.threads or cores)  # torch backend; ONNX sessions have their own
                out = Path(tmp) / f"out{repeat}-{index}"
                executor = executors.get(row.name)
                reader = DraftReader(segmenters[row.name].config.data.image_size) if row.draft else read_image
                started = time.perf_counter()
                report = predict_files(segmenters[row.name], [folder], out, workers=row.workers,
                                       batch_size=row.batch, executor=executor, reader=reader)
                elapsed = time.perf_counter() - started
                assert len(report.written) == args.images and not report.failed, report.failed
                last[row.name] = out
                if repeat:
                    seconds[row.name].append(elapsed)
                    if executor is not None and executor.network_seconds:
                        network_share[row.name].append(executor.network_seconds / elapsed)
        for executor in executors.values():
            executor.close()
        compared = {}
        if args.compare_cpu:
            cpu = ModelSpec(model=args.model, device="cpu", backend=args.backend, threads=cores).load()
            reference = Path(tmp) / "cpu"
            torch.set_num_threads(cores)
            predict_files(cpu, sorted(folder.glob("*.jpg"))[: args.compare_cpu], reference)
            compared = {row.name: agreement(last[row.name], reference, args.compare_cpu) for row in rows}
    base = statistics.median(seconds[rows[0].name])
    versus = "x sequential" if rows[0].name.startswith("sequential") else "x first row"
    where = torch.cuda.get_device_name(args.device) + ", float16 autocast" if on_gpu else "no GPU"
    print(f"{cores} CPU cores; {where}; backend {args.backend}; {args.images} JPEGs of {args.size}; median of "
          f"{args.repeats} repeats, taken in turns; ceiling (the network alone on prepared batches): "
          f"{top:.2f} images/s\n")
    header = f"| {'executor':<78} | {'images/s':>8} | {'s / image':>9} | {versus:>12} | " \
             f"{'of ceiling':>10} | {'each repeat, ' + versus:<28} |"
    if compared:
        header += f" {'DC vs CPU (mean, min)':<22} |"
    print(header)
    print(f"|{'-' * 80}|{'-' * 9}:|{'-' * 10}:|{'-' * 13}:|{'-' * 11}:|{'-' * 30}|" + ("-" * 24 + "|" if compared
                                                                                      else ""))
    rate = {}
    for row in rows:
        median = statistics.median(seconds[row.name])
        rate[row.name] = args.images / median
        each = " ".join(f"{b / s:.2f}" for s, b in zip(seconds[row.name], seconds[rows[0].name], strict=True))
        line = (f"| {row.name:<78} | {rate[row.name]:8.2f} | {median / args.images:9.4f} | "
                f"{base / median:12.2f} | {rate[row.name] / top:10.2f} | {each:<28} |")
        if compared:
            mean, low = compared[row.name]
            line += f" {f'{mean:.4f}, {low:.4f}':<22} |"
        print(line)
    print()
    if not on_gpu and args.rows == "all" and not args.defaults:
        processes, threads, one = (rate[rows[index].name] for index in (4, 1, 3))
        print(f"processes / threads (2 workers, 1 network thread each): {processes / threads:.2f}")
        print(f"2 processes / 1 process (1 network thread each): {processes / one:.2f}")
        if args.int8:
            print("processes / threads, int8 (2 workers, 1 network thread each): "
                  f"{rate[INT8_ROWS[1].name] / rate[INT8_ROWS[0].name]:.2f}")
    for name, seconds_to_start in starts.items():
        print(f"{name}: its workers started (and loaded their models) in {seconds_to_start:.1f} s, once, untimed")
    for row in rows:
        if network_share[row.name]:
            print(f"{row.name}: the network in the main process {statistics.median(network_share[row.name]):.0%} "
                  "of the run's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
