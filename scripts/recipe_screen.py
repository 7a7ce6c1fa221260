"""Issue 26 step 2: screen more capacity against the 10-epoch recipe, out of fold on folds 0 and 1, paired.

The recipe is configs/pretrained.yaml (EfficientNet-Lite0, decoder width 8, Shades of Gray) with
``train.epochs=10``; each option changes one thing: ``lite2`` (model.encoder=efficientnet_lite2), ``width16``
(model.width=16), ``dice_ce`` (train.loss=dice_ce), ``epochs20`` (train.epochs=20). Steps:

1. the committed split (``--split``, docs/pretrained_cv/splits.json) copied byte for byte into every
   recipe's run folder, and the resize cache filled once;
2. a probe: training s/image and peak GPU memory of each recipe alone; the plan keeps the options whose
   summed training time (every job shares the one device) fits the budget, dropping from the end of
   :data:`OPTIONS`, and runs as many jobs at once as the GPU memory allows (all of them on an H100/H200);
3. one ``skinnet train`` process per recipe and fold, stopped at the deadline (a stopped fold has no
   out-of-fold scores and its recipe is left out of the tests);
4. ``RUN/oof/NAME.csv``: each recipe's per-image out-of-fold scores of both folds (the folds'
   ``val_metrics.csv`` rows), and ``benchmarks/paired_oof.py`` of each option against the recipe, into
   ``RUN/screen.md`` and ``RUN/screen.json``.

    python scripts/recipe_screen.py --data DATA --run runs/recipe_screen --split docs/pretrained_cv/splits.json \\
        [--budget 690] [--folds 0,1] [--options lite2,width16,dice_ce,epochs20] [key=value ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from skinnet.config import Config, load_config
from skinnet.data.layout import find_pairs
from skinnet.data.splits import load_folds
from skinnet.evaluation.comparison import machine_name, time_training_steps
from skinnet.runs import RunError, fold_paths, read_log, share_split, splits_path
from skinnet.training.cv import prepare_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pretrained.yaml"
BASELINE = "recipe10"
RECIPE = ["train.epochs=10"]
# In the order they are dropped last to first when the budget is short.
OPTIONS = {
    "lite2": ["model.encoder=efficientnet_lite2"],
    "width16": ["model.width=16"],
    "dice_ce": ["train.loss=dice_ce"],
    "epochs20": ["train.epochs=20"],
}
# Every job on a GPU: AMP and NHWC (the speed settings of scripts/paper_fold0.py), one torch thread each.
DEVICE = ["train.amp=true", "train.channels_last=true", "train.threads=1"]


def recipe_overrides(name: str, extra: list[str]) -> list[str]:
    return [*RECIPE, *DEVICE, *OPTIONS.get(name, []), *extra]


def prepare(config: Config, data: str, run: Path, names: list[str], split: str) -> tuple[int, int]:
    """The committed split in every run folder (byte-identical) and the resize cache; (training, validation)
    sizes of a fold."""
    for name in names:
        if fold_paths(run / name, 0).log.exists() or fold_paths(run / name, 1).log.exists():
            raise RunError(f"{run / name} already holds a run: choose another --run")
    load_folds(split, [pair.id for pair in find_pairs(data).pairs])  # the split fits the data
    first = run / names[0]
    first.mkdir(parents=True, exist_ok=True)
    splits_path(first).write_bytes(Path(split).read_bytes())
    folds = prepare_run(config, data, first)
    for name in names[1:]:
        share_split(first, run / name)
    return sum(len(fold) for fold in folds) - len(folds[0]), len(folds[0])


def plan(seconds: dict[str, float], budget: float) -> tuple[list[str], list[str]]:
    """Recipes to train (the baseline always) and those dropped: options go from the end until the summed
    estimated training time fits ``budget``."""
    names = list(seconds)
    dropped = []
    while len(names) > 1 and sum(seconds[n] for n in names) > budget:
        dropped.insert(0, names.pop())
    return names, dropped


def start(name: str, fold: int, overrides: list[str], data: str, run: Path) -> subprocess.Popen:
    folder = fold_paths(run / name, fold).folder
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "skinnet", "train", "--config", str(CONFIG), "--data", data,
               "--out", str(run / name), "--fold", str(fold), *overrides]
    env = {**os.environ, "TQDM_MININTERVAL": "30"}
    with open(folder / "train.log", "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def train_jobs(jobs: list[tuple[str, int, list[str]]], data: str, run: Path, at_once: int,
               deadline: float) -> dict[str, str]:
    """Run the (recipe, fold) jobs, ``at_once`` at a time, in order; stop what still runs at ``deadline``."""
    waiting, running, status = list(jobs), {}, {}
    while waiting or running:
        while waiting and len(running) < at_once and time.monotonic() < deadline:
            name, fold, overrides = waiting.pop(0)
            running[f"{name}/fold_{fold}"] = start(name, fold, overrides, data, run)
        time.sleep(1)
        for key, process in list(running.items()):
            if process.poll() is not None:
                status[key] = "finished" if process.returncode == 0 else f"failed ({process.returncode})"
                del running[key]
        if time.monotonic() > deadline:
            for key, process in running.items():
                stop(process)
                status[key] = "stopped at the deadline"
            running = {}
            status.update({f"{name}/fold_{fold}": "not started (budget)" for name, fold, _ in waiting})
            waiting = []
    return status


def write_oof(run: Path, name: str, folds: list[int]) -> Path | None:
    """Both folds' per-image rows in one CSV of ``val_metrics.csv``'s columns; None if a fold has none."""
    paths = [fold_paths(run / name, k).val_metrics for k in folds]
    if not all(p.exists() for p in paths):
        return None
    target = run / "oof" / f"{name}.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="") as out:
        writer = None
        for path in paths:
            with open(path, newline="") as handle:
                reader = csv.DictReader(handle)
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
                    writer.writeheader()
                writer.writerows(reader)
    return target


def paired(run: Path, option: str) -> str:
    command = [sys.executable, str(REPO / "benchmarks" / "paired_oof.py"),
               "--a", str(run / "oof" / f"{BASELINE}.csv"), "--b", str(run / "oof" / f"{option}.csv"),
               "--names", BASELINE, option]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else f"paired_oof failed: {done.stderr[-2000:]}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the ISIC 2017 training pairs (any layout skinnet reads)")
    parser.add_argument("--run", default="runs/recipe_screen", help="run folder (default runs/recipe_screen)")
    parser.add_argument("--split", default=str(REPO / "docs" / "pretrained_cv" / "splits.json"),
                        help="split file (default: the committed docs/pretrained_cv/splits.json)")
    parser.add_argument("--folds", default="0,1", help="folds to screen on (default 0,1)")
    parser.add_argument("--options", default=",".join(OPTIONS), help=f"comma list of {', '.join(OPTIONS)}")
    parser.add_argument("--budget", type=float, default=690.0, help="seconds for the whole job (default 690)")
    parser.add_argument("--reserve", type=float, default=60.0, help="seconds kept for the tables (default 60)")
    parser.add_argument("--safety", type=float, default=1.5,
                        help="real training time / the probe's estimate (data loading, validation; default 1.5)")
    parser.add_argument("--probe-steps", type=int, default=10, help="timed training steps per recipe")
    parser.add_argument("--workers", type=int, help="DataLoader workers per job (default: CPU cores shared "
                                                    "among the jobs on a GPU, 0 on CPU)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every recipe")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    deadline = t0 + args.budget - args.reserve
    run = Path(args.run)
    folds = [int(k) for k in args.folds.split(",") if k.strip()]
    options = [o for o in args.options.split(",") if o]
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise SystemExit(f"--options: unknown {sorted(unknown)}; known: {', '.join(OPTIONS)}")
    names = [BASELINE, *options]
    configs = {name: load_config(CONFIG, recipe_overrides(name, args.overrides)) for name in names}
    n_train, n_val = prepare(configs[BASELINE], args.data, run, names, args.split)
    print(f"device: {machine_name(configs[BASELINE])}; a fold: {n_train} training, {n_val} validation images",
          flush=True)

    timings = {name: time_training_steps(config, args.probe_steps) for name, config in configs.items()}
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    seconds = {name: args.safety * configs[name].train.epochs * len(folds) * (n_train + n_val / 3)
               * timings[name].seconds_per_image for name in names}  # validation: forward only, ~1/3
    names, dropped = plan(seconds, deadline - time.monotonic())
    jobs = [(name, fold, recipe_overrides(name, args.overrides)) for name in names for fold in folds]
    peaks = [timings[n].peak_memory_bytes for n in names if timings[n].peak_memory_bytes]
    if torch.cuda.is_available() and peaks:
        free, _ = torch.cuda.mem_get_info()
        at_once = max(1, min(len(jobs), int(0.8 * free / (1.5 * max(peaks)))))
    else:
        at_once = len(jobs) if torch.cuda.is_available() else 1  # the CPU: one job after another
    workers = args.workers if args.workers is not None else (
        max(1, (os.cpu_count() or 2) // at_once - 1) if torch.cuda.is_available() else 0)
    jobs = [(n, k, [*o, f"data.num_workers={workers}"]) for n, k, o in jobs]
    for name in names:
        peak = timings[name].peak_memory_bytes
        print(f"probe {name}: {1 / timings[name].seconds_per_image:.1f} training images/s"
              + ("" if peak is None else f", peak {peak / 2**30:.2f} GiB")
              + f"; estimated {seconds[name]:.0f} s for folds {args.folds}", flush=True)
    print(f"plan: {', '.join(names)} ({len(jobs)} jobs, {at_once} at once, {workers} workers each)"
          + (f"; dropped for the budget: {', '.join(dropped)}" if dropped else ""), flush=True)

    status = train_jobs(jobs, args.data, run, at_once, deadline)
    oof = {name: write_oof(run, name, folds) for name in names}
    result: dict[str, Any] = {"device": machine_name(configs[BASELINE]), "folds": folds, "baseline": BASELINE,
                              "dropped": dropped, "jobs": status, "wall_seconds": time.monotonic() - t0,
                              "recipes": {}}
    lines = [f"# Recipe screen (issue 26): folds {args.folds}, against {BASELINE}", "",
             f"Device: {result['device']}. Jobs: " + ", ".join(f"{k} {v}" for k, v in status.items()) + "."]
    if dropped:
        lines.append(f"Dropped for the budget: {', '.join(dropped)}.")
    for name in names:
        logs = [read_log(fold_paths(run / name, k).log) for k in folds if fold_paths(run / name, k).log.exists()]
        result["recipes"][name] = {"overrides": OPTIONS.get(name, []), "oof_csv": str(oof[name] or ""),
                                   "epochs": [len(log) for log in logs],
                                   "train_seconds": [sum(r["seconds"] for r in log) for log in logs]}
        if name != BASELINE:
            if oof[BASELINE] and oof[name]:
                table = paired(run, name)
            else:
                table = "not compared: a fold of this recipe or of the baseline has no out-of-fold scores"
            result["recipes"][name]["paired"] = table
            lines += ["", f"## {name} ({' '.join(OPTIONS[name])}) against {BASELINE}", "", table.strip()]
    (run / "screen.json").write_text(json.dumps(result, indent=1) + "\n")
    (run / "screen.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return 0 if oof[BASELINE] and all(v == "finished" for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
