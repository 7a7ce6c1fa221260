"""Comparing networks on equal terms: their size, cost and speed, and a paired test of per-image scores.

Shared by ``benchmarks/compare_models.py`` (SkinNet against U-Net over a cross-validation),
``benchmarks/compare_recipes.py`` (training recipes side by side) and ``scripts/paper_fold0.py`` (the paper's
configuration on one GPU, fold 0).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch.utils.flop_counter import FlopCounterMode

from skinnet.config import Config
from skinnet.devices import resolve_device
from skinnet.inference.onnx import OnnxBackend, export_onnx
from skinnet.losses import soft_dice_loss
from skinnet.networks import build_model


@dataclass
class StepTiming:
    """Speed and memory of training steps: seconds per image, and the peak GPU memory (``None`` on CPU)."""

    seconds_per_image: float
    peak_memory_bytes: int | None

    @property
    def images_per_second(self) -> float:
        return 1.0 / self.seconds_per_image


def count_parameters(config: Config) -> int:
    """Trainable parameters of the network ``config`` describes."""
    return sum(p.numel() for p in build_model(config.model).parameters() if p.requires_grad)


def count_flops(config: Config, size: int | None = None) -> int:
    """FLOPs of one forward pass of one ``size`` x ``size`` image (default: the config's input size)."""
    size = size or config.data.image_size
    model = build_model(config.model).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, config.model.in_channels, size, size))
    return counter.get_total_flops()


def time_training_steps(config: Config, steps: int = 10, warmup: int = 3) -> StepTiming:
    """Median wall time per image of a training step (forward, eq. 1 loss, backward, Adam), and peak memory.

    Random input of the config's batch and input size on its device (``train.device``), set up as training
    sets it up: AMP on CUDA when ``train.amp``, ``train.channels_last``, cuDNN benchmark mode on CUDA and
    ``train.threads`` CPU threads. Data loading is left out, as it is the same for every network. The peak
    memory is what torch allocated on the GPU during these steps.
    """
    device = resolve_device(config.train.device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as in training: one input size throughout
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(config.train.seed)
    memory_format = torch.channels_last if config.train.channels_last else torch.contiguous_format
    model = build_model(config.model).to(device, memory_format=memory_format).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    batch, size = config.train.batch_size, config.data.image_size
    images = torch.randn(batch, config.model.in_channels, size, size, device=device)
    images = images.contiguous(memory_format=memory_format)
    masks = (torch.rand(batch, size, size, device=device) > 0.5).long()
    amp = config.train.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    times = []
    for step in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            logits = model(images)
        scaler.scale(soft_dice_loss(logits, masks)).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return StepTiming(statistics.median(times) / batch, peak)


def training_seconds_per_image(config: Config, steps: int = 10, warmup: int = 3) -> float:
    """Median wall time of one training step per image (see :func:`time_training_steps`)."""
    return time_training_steps(config, steps, warmup).seconds_per_image


def onnx_seconds_per_image(config: Config, threads: int, size: int | None = None, repeats: int = 10) -> float:
    """Median CPU latency of one ``size`` x ``size`` image (default: the config's input size) through ONNX
    Runtime with ``threads`` threads: the network alone, as exported (random weights run as fast as trained
    ones)."""
    model = build_model(config.model).eval()
    size = size or config.data.image_size
    batch = np.random.default_rng(0).standard_normal((1, config.model.in_channels, size, size), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        session = OnnxBackend(export_onnx(model, config, Path(tmp) / "model.onnx"), threads=threads)
        for _ in range(2):
            session(batch)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session(batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def machine_name(config: Config) -> str:
    """The device the step times were measured on, in words."""
    device = resolve_device(config.train.device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def paired_wilcoxon(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of ``first - second`` over the IDs both have.

    Returns ``n``, the median difference, the statistic and the p-value; the last two are NaN where every
    difference is zero (identical scores), which the test cannot rank.
    """
    ids = sorted(set(first) & set(second))
    diff = np.array([first[key] - second[key] for key in ids])
    result = {"n": len(ids), "median_difference": float(np.median(diff)) if ids else math.nan,
              "statistic": math.nan, "p_value": math.nan}
    if np.any(diff != 0):  # all-zero differences (identical predictions) have no test
        test = stats.wilcoxon(diff)
        result.update(statistic=float(test.statistic), p_value=float(test.pvalue))
    return result


def paired_table(first: dict[str, dict[str, float]], second: dict[str, dict[str, float]], names: tuple[str, str],
                 metrics: tuple[str, ...] = ("DC", "JI")) -> str:
    """Two sets of per-image scores (ID -> metric -> value) as a markdown table, over the IDs both have.

    One row per metric: each side's mean, the median of ``first - second``, the paired Wilcoxon p-value
    (:func:`paired_wilcoxon`) and on how many images ``first`` scores higher and lower.
    """
    ids = sorted(set(first) & set(second))
    lines = [f"| metric | {names[0]} | {names[1]} | median {names[0]} − {names[1]} | Wilcoxon p | "
             f"{names[0]} better / worse |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for metric in metrics:
        a = {key: float(first[key][metric]) for key in ids}
        b = {key: float(second[key][metric]) for key in ids}
        test = paired_wilcoxon(a, b)
        better, worse = sum(a[key] > b[key] for key in ids), sum(a[key] < b[key] for key in ids)
        lines.append(f"| {metric} | {np.mean(list(a.values())):.4f} | {np.mean(list(b.values())):.4f} | "
                     f"{test['median_difference']:+.4f} | {test['p_value']:.3g} | {better} / {worse} |")
    return "\n".join(lines)
