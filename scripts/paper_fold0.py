"""The paper's configuration on one GPU, fold 0: SkinNet against U-Net and SkinNet without dilation (issue 10).

``configs/isic2017_paper.yaml`` at 256 px (width 32, batch 8, Adam 1e-4 halved on plateau, 100 epochs
nominal) with AMP and ``train.channels_last``, on fold 0 of the saved split. Steps:

1. the split (``--split``, else the seeded one, which for the 2000 ISIC 2017 training pairs is the same as
   ``runs/cpu/splits.json``) shared by every network's run folder, and the resize cache, once;
2. a probe: images/s and peak GPU memory of a few training steps of each network, each alone on the device;
3. the plan: the epochs that fit the time budget, the same for every network (at most ``train.epochs``), and
   whether the optional no-dilation network fits (all three must reach ``--min-epochs``);
4. training: one ``python -m skinnet train --fold 0`` process per network, all at once on the one GPU, each
   predicting its fold-0 validation images at full size when it ends. Any still running at the deadline is
   stopped, and its best model so far predicts them instead. The LR schedule (on plateau) does not depend
   on ``train.epochs``, so a run stopped after N epochs trained exactly as one configured for N.

Writes ``RUN/<network>/fold_0/`` (as ``skinnet train`` does, plus ``train.log``) and ``RUN/job.json`` (probe,
plan, what each process did). ``scripts/paper_fold0_results.py`` then makes the tables.

    python scripts/paper_fold0.py --data DATA --run runs/paper_fold0 [--budget 540] [--split FILE] \\
        [--workers N] [--min-epochs 25] [key=value ...]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from skinnet.cli import user_errors
from skinnet.config import Config, load_config
from skinnet.data.atomic import write_json
from skinnet.data.layout import find_pairs
from skinnet.data.splits import load_folds
from skinnet.devices import resolve_device
from skinnet.evaluation.comparison import machine_name, time_training_steps
from skinnet.runs import RunError, fold_paths, read_log, read_split, share_split, splits_path
from skinnet.training.cv import prepare_run
from skinnet.training.trainer import predict_validation, prepare_fold

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "isic2017_paper.yaml"
# The paper's recipe at the stored data's full resolution (256 px: rates 1-8 reach real features), with the
# GPU speed-ups that do not change the arithmetic's meaning.
BASE = ["data.image_size=256", "train.amp=true", "train.channels_last=true"]
# name: (label, overrides); the first two are the comparison the issue asks for, the rest run if time allows
NETWORKS = {
    "skinnet": ("SkinNet", []),
    "unet": ("U-Net", ["model.name=unet"]),
    "nodilation": ("SkinNet without dilation", ["model.dilations=[1]"]),
}
REQUIRED = ("skinnet", "unet")
# A validation image costs a forward pass, about a third of a training step (forward + backward).
VAL_COST = 1 / 3


@dataclass
class Plan:
    """Which networks train, for how many epochs, and the estimated wall time of their training."""

    networks: list[str]
    epochs: int
    estimated_seconds: float
    dropped: list[str]


def network_overrides(name: str, user: list[str], workers: int) -> list[str]:
    """The overrides of one network: the recipe, the user's, then the network's own (which win)."""
    return [*BASE, f"data.num_workers={workers}", *user, *NETWORKS[name][1]]


def epoch_seconds(seconds_per_image: float, n_train: int, n_val: int, safety: float) -> float:
    """Estimated wall time of one epoch (training and validation) from the probe's step time."""
    return safety * seconds_per_image * (n_train + VAL_COST * n_val)


def choose_plan(seconds: dict[str, float], budget: float, nominal: int, min_epochs: int) -> Plan:
    """The most epochs (at most ``nominal``) that every network can train within ``budget`` seconds.

    The networks share one GPU, so an epoch of all of them takes about the sum of their epoch times. The
    optional networks (beyond :data:`REQUIRED`) are dropped if with them the epochs would fall below
    ``min(min_epochs, nominal)``. At least one epoch always runs (the deadline then stops what overruns).
    """
    def fit(names: list[str]) -> int:
        return min(nominal, math.floor(budget / sum(seconds[name] for name in names)))

    names = list(seconds)
    epochs = fit(names)
    dropped = [name for name in names if name not in REQUIRED]
    if epochs < min(min_epochs, nominal) and dropped and len(dropped) < len(names):  # never drop them all
        names = [name for name in names if name in REQUIRED]
        epochs = fit(names)
    else:
        dropped = []
    epochs = max(1, epochs)
    return Plan(names, epochs, epochs * sum(seconds[name] for name in names), dropped)


def probe(configs: dict[str, Config], steps: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Training images/s and peak GPU memory of each network, one after another, alone on the device."""
    result = {}
    for name, config in configs.items():
        timing = time_training_steps(config, steps, warmup)
        peak = timing.peak_memory_bytes
        result[name] = {"seconds_per_image": timing.seconds_per_image,
                        "images_per_second": timing.images_per_second,
                        "peak_memory_gib": None if peak is None else peak / 2**30}
        print(f"probe {name}: {timing.images_per_second:.1f} training images/s"
              + ("" if peak is None else f", peak memory {peak / 2**30:.2f} GiB"), flush=True)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the training processes need the memory, not this one
    return result


def prepare(config: Config, data: str, run: Path, names: list[str], split: str | None) -> tuple[int, int]:
    """One split for every network's run folder, and the resize cache; returns (training, validation) sizes.

    Raises:
        RunError: a network's run folder already holds a run, or a split other than ``split``.
        SplitError: ``split`` does not fit the data.
    """
    first = run / names[0]
    for name in names:
        if fold_paths(run / name, 0).log.exists():
            raise RunError(f"{fold_paths(run / name, 0).folder} already holds a run: choose another --run")
    if split:
        folds = load_folds(split, [pair.id for pair in find_pairs(data).pairs])
        target = splits_path(first)
        if target.exists() and read_split(first) != folds:
            raise RunError(f"{target} is not the split of {split}: choose another --run")
        first.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(split).read_bytes())
    folds = prepare_run(config, data, first)
    for name in names[1:]:
        share_split(first, run / name)
    n_val = len(folds[0])
    return sum(len(fold) for fold in folds) - n_val, n_val


def start(name: str, overrides: list[str], data: str, run: Path) -> subprocess.Popen:
    """One training process (its own process group, so that a stop also ends its DataLoader workers)."""
    folder = fold_paths(run / name, 0).folder
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "skinnet", "train", "--config", str(CONFIG), "--data", data,
               "--out", str(run / name), "--fold", "0", *overrides]
    # Few progress-bar lines: the log is for errors and the final line, log.csv holds the epochs.
    env = {**os.environ, "TQDM_MININTERVAL": "30"}
    with open(folder / "train.log", "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def epochs_logged(run: Path, name: str) -> int:
    return len(read_log(fold_paths(run / name, 0).log))


def train_all(overrides: dict[str, list[str]], data: str, run: Path, deadline: float,
              t0: float) -> dict[str, dict[str, Any]]:
    """Train the networks at once; stop any still running at ``deadline`` (a ``time.monotonic`` value)."""
    started = time.monotonic()
    processes = {name: start(name, args, data, run) for name, args in overrides.items()}
    status: dict[str, dict[str, Any]] = {}
    last_report = 0.0
    while len(status) < len(processes):
        time.sleep(1)
        now = time.monotonic()
        for name, process in processes.items():
            if name not in status and process.poll() is not None:
                status[name] = {"status": "finished" if process.returncode == 0 else "failed",
                                "returncode": process.returncode, "wall_seconds": now - started}
        if now - last_report >= 30:
            last_report = now
            gpu = ""
            if torch.cuda.is_available():
                free, total = torch.cuda.mem_get_info()
                gpu = f"; GPU memory in use {(total - free) / 2**30:.1f} GiB"
            print(f"[{now - t0:.0f}s] epochs: " + " ".join(f"{name}={epochs_logged(run, name)}"
                                                           for name in processes) + gpu, flush=True)
        if now > deadline:
            for name, process in processes.items():
                if name not in status:
                    stop(process)
                    status[name] = {"status": "stopped at the deadline", "returncode": process.returncode,
                                    "wall_seconds": time.monotonic() - started}
    return status


def stop(process: subprocess.Popen) -> None:
    """End a training process and its workers: SIGTERM to its group, SIGKILL if it lingers."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def predict_stopped(config: Config, data: str, run: Path, name: str) -> bool:
    """Predict the validation images of a stopped network with its best model so far; False if it has none."""
    paths = fold_paths(run / name, 0)
    if not paths.kept_weights.exists() or not read_log(paths.log):
        return False
    val_pairs = prepare_fold(config, data, run / name, 0).val_pairs
    predict_validation(paths, val_pairs, resolve_device(config.train.device))
    return True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the ISIC 2017 training pairs (any layout skinnet reads)")
    parser.add_argument("--run", default="runs/paper_fold0", help="run folder (default runs/paper_fold0)")
    parser.add_argument("--split", help="split file to use (default: the seeded split, created in the run)")
    parser.add_argument("--budget", type=float, default=540.0,
                        help="seconds for the whole job, from start to the last prediction (default 540)")
    parser.add_argument("--reserve", type=float, default=60.0,
                        help="seconds of the budget kept for predicting and the results (default 60)")
    parser.add_argument("--min-epochs", type=int, default=25,
                        help="the optional no-dilation network runs only if all reach this many epochs")
    parser.add_argument("--safety", type=float, default=1.5,
                        help="real epoch time / the probe's estimate (data loading, metrics; default 1.5)")
    parser.add_argument("--workers", type=int, help="DataLoader workers per network (default: CPU cores "
                                                    "shared among the networks on a GPU, 0 on CPU)")
    parser.add_argument("--probe-steps", type=int, default=10, help="timed training steps per network")
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help=f"comma list of networks to consider (default {','.join(NETWORKS)}); one alone "
                             "(e.g. nodilation, with train.epochs of an earlier run) adds a row to that run, "
                             "compared through paper_fold0_results.py --earlier")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every network")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return run_job(parse_args(argv))
    except user_errors() as err:  # a bad path, split or override: the message says what to change
        print(f"error: {err}", file=sys.stderr)
        return 2


def run_job(args: argparse.Namespace) -> int:
    """Prepare, probe, plan, train (see the module docstring); returns 1 if a network predicted nothing."""
    t0 = time.monotonic()
    run = Path(args.run)
    names = [name for name in args.networks.split(",") if name]
    unknown = set(names) - set(NETWORKS)
    if unknown or not names:
        raise SystemExit(f"--networks: a comma list of {','.join(NETWORKS)}")
    configs = {name: load_config(CONFIG, network_overrides(name, args.overrides, 0)) for name in names}
    first = configs[names[0]]
    n_train, n_val = prepare(first, args.data, run, names, args.split)
    device = machine_name(first)
    print(f"device: {device}; fold 0: {n_train} training, {n_val} validation images", flush=True)

    timings = probe(configs, args.probe_steps, warmup=3)
    seconds = {name: epoch_seconds(timings[name]["seconds_per_image"], n_train, n_val, args.safety)
               for name in names}
    deadline = t0 + args.budget - args.reserve
    plan = choose_plan(seconds, deadline - time.monotonic(), first.train.epochs, args.min_epochs)
    on_gpu = resolve_device(first.train.device).type == "cuda"
    workers = args.workers if args.workers is not None else (
        max(1, ((os.cpu_count() or 1) - len(plan.networks)) // len(plan.networks)) if on_gpu else 0)
    overrides = {name: [*network_overrides(name, args.overrides, workers), f"train.epochs={plan.epochs}"]
                 for name in plan.networks}
    print(f"plan: {', '.join(plan.networks)} at once, {plan.epochs} epochs each (nominal {first.train.epochs}), "
          f"{workers} DataLoader workers each; estimated {plan.estimated_seconds:.0f} s of training, "
          f"deadline in {deadline - time.monotonic():.0f} s"
          + (f"; left out for time: {', '.join(plan.dropped)}" if plan.dropped else ""), flush=True)

    status = train_all(overrides, args.data, run, deadline, t0)
    for name in plan.networks:
        status[name]["epochs_run"] = epochs_logged(run, name)
        if status[name]["status"] != "finished":
            status[name]["predicted_by_job"] = predict_stopped(configs[name], args.data, run, name)
        print(f"{name}: {status[name]['status']} after {status[name]['epochs_run']} epochs, "
              f"{status[name]['wall_seconds']:.0f} s", flush=True)
    write_json(run / "job.json", {
        "device": device, "cuda": on_gpu, "torch": torch.__version__, "budget_seconds": args.budget,
        "n_train": n_train, "n_val": n_val, "probe": timings, "estimated_epoch_seconds": seconds,
        "safety": args.safety, "plan": asdict(plan), "nominal_epochs": first.train.epochs, "workers": workers,
        "overrides": overrides, "status": status, "wall_seconds": time.monotonic() - t0,
        "labels": {name: NETWORKS[name][0] for name in plan.networks}})
    failed = [name for name in plan.networks if not fold_paths(run / name, 0).val_metrics.exists()]
    if failed:
        print(f"no validation predictions for {', '.join(failed)}: see {run}/<network>/fold_0/train.log",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
