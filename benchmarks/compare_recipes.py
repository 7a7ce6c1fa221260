"""Training recipes side by side on one split: out-of-fold Dice, Wilcoxon against a baseline, size and speed.

Each recipe is a name, a run folder and a config (with overrides). All run folders share the first recipe's
``splits.json``; each recipe's folds are trained by the library behind ``skinnet cv`` (finished folds are
skipped, so a recipe whose folds were already cross-validated in its run folder costs nothing). Prints one
table: parameters, FLOPs of one image at the recipe's input size (``torch.utils.flop_counter``, a
multiply-add counts 2), training seconds per image (one training step, every recipe timed in this run on
this machine), CPU inference seconds per image through ONNX Runtime at the recipe's input size (batch 1,
``--threads`` threads, also timed in this run), the epochs and wall time each fold took, per-image
out-of-fold DC and JI as mean ± sd over folds (argmax of the fold's own model, no TTA or post-processing,
so that recipes are compared on the network alone), and a paired two-sided Wilcoxon signed-rank test of
per-image DC against the first recipe. Writes ``OUT/recipes.{json,md}``.

    python benchmarks/compare_recipes.py --data ../shared/data/isic2017_train --out runs/side --folds 0 \\
        --recipe pretrained runs/pretrained configs/pretrained.yaml \\
        --recipe current runs/side/current configs/cpu.yaml train.epochs=8 \\
        --recipe paper256 runs/side/paper256 configs/isic2017_paper.yaml data.image_size=256 model.width=8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinnet.config import Config, load_config
from skinnet.data.io import write_json, write_text
from skinnet.evaluation.comparison import (
    count_flops,
    count_parameters,
    machine_name,
    paired_wilcoxon,
    share_split,
    training_seconds_per_image,
)
from skinnet.inference.onnx import OnnxModel, export_onnx
from skinnet.metrics import mean_metrics, sample_sd
from skinnet.networks import build_model
from skinnet.training.cv import fold_dir, prepare_run, read_metrics_csv, run_cv
from skinnet.training.logs import read_log


@dataclass
class Recipe:
    name: str
    run_dir: Path
    config_path: str
    overrides: list[str]

    def config(self) -> Config:
        return load_config(self.config_path, self.overrides)


def onnx_seconds_per_image(config: Config, threads: int, repeats: int = 10) -> float:
    """Median latency of one image at the config's input size through ONNX Runtime on the CPU."""
    model = build_model(config.model).eval()
    size = config.data.image_size
    batch = np.random.default_rng(0).standard_normal((1, config.model.in_channels, size, size), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        session = OnnxModel(export_onnx(model, config, Path(tmp) / "model.onnx"), threads=threads)
        for _ in range(2):
            session(batch)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session(batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def per_image(run_dir: Path, folds: list[int], metric: str) -> dict[str, float]:
    """Out-of-fold ``metric`` of each image of the folds, by ID."""
    return {str(row["id"]): row[metric] for fold in folds
            for row in read_metrics_csv(fold_dir(run_dir, fold) / "val_metrics.csv")}


def recipe_row(recipe: Recipe, folds: list[int], threads: int) -> dict[str, Any]:
    """The table's numbers for one trained recipe."""
    config = recipe.config()
    scores = [mean_metrics(read_metrics_csv(fold_dir(recipe.run_dir, k) / "val_metrics.csv")) for k in folds]
    logs = [read_log(fold_dir(recipe.run_dir, k) / "log.csv") for k in folds]
    row: dict[str, Any] = {
        "run_dir": str(recipe.run_dir), "config": recipe.config_path, "overrides": recipe.overrides,
        "encoder": config.model.encoder, "width": config.model.width, "image_size": config.data.image_size,
        "parameters": count_parameters(config), "flops": count_flops(config),
        "train_seconds_per_image": training_seconds_per_image(config),
        "onnx_seconds_per_image": onnx_seconds_per_image(config, threads),
        "epochs": [len(log) for log in logs],
        "fold_minutes": [sum(r["seconds"] for r in log) / 60 for log in logs],
    }
    for metric in ("DC", "JI"):
        values = [s[metric] for s in scores]
        row[f"{metric}_mean"], row[f"{metric}_sd"] = float(np.mean(values)), sample_sd(values)
    return row


def compare(recipes: list[Recipe], data: str, folds: list[int], threads: int, resume: bool) -> dict[str, Any]:
    """Train what is missing, then gather every recipe's row and the Wilcoxon tests against the first."""
    first = recipes[0]
    prepare_run(first.config(), data, first.run_dir)
    for recipe in recipes[1:]:
        share_split(first.run_dir, recipe.run_dir)
    for recipe in recipes:
        run_cv(recipe.config(), data, recipe.run_dir, folds=folds, resume=resume, progress=print)
    torch.set_num_threads(threads)
    result: dict[str, Any] = {"data": str(data), "folds": folds, "baseline": first.name,
                              "recipes": {r.name: recipe_row(r, folds, threads) for r in recipes}}
    result["timed_on"] = machine_name(first.config())
    baseline = {m: per_image(first.run_dir, folds, m) for m in ("DC", "JI")}
    for recipe in recipes[1:]:
        for metric in ("DC", "JI"):
            result["recipes"][recipe.name][f"wilcoxon_{metric}"] = paired_wilcoxon(
                per_image(recipe.run_dir, folds, metric), baseline[metric])
    return result


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table and its notes."""
    lines = ["| recipe | encoder | width | input px | parameters | GFLOPs/image | training s/image | "
             "ONNX CPU s/image | epochs | min/fold | DC (mean ± sd over folds) | JI (mean ± sd over folds) | "
             f"DC − {result['baseline']} (median, Wilcoxon p) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in result["recipes"].items():
        test = row.get("wilcoxon_DC")
        versus = f"{test['median_difference']:+.4f}, p = {test['p_value']:.2g}" if test else "baseline"
        lines.append(
            f"| {name} | {row['encoder']} | {row['width']} | {row['image_size']} | {row['parameters']:,} | "
            f"{row['flops'] / 1e9:.2f} | {row['train_seconds_per_image']:.3f} | "
            f"{row['onnx_seconds_per_image']:.4f} | {'/'.join(map(str, row['epochs']))} | "
            f"{statistics.mean(row['fold_minutes']):.0f} | {row['DC_mean']:.4f} ± {row['DC_sd']:.4f} | "
            f"{row['JI_mean']:.4f} ± {row['JI_sd']:.4f} | {versus} |")
    n = next((r["wilcoxon_DC"]["n"] for r in result["recipes"].values() if "wilcoxon_DC" in r), 0)
    lines += ["", f"Folds {','.join(map(str, result['folds']))} of one split ({n} out-of-fold images per "
                  f"paired test). Training and ONNX times measured in this run on {result['timed_on']}; "
                  "min/fold is the logged wall time of each fold's training (machine load varies)."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="data folder (any layout skinnet reads)")
    parser.add_argument("--out", default="runs/side", help="where recipes.{json,md} go (default runs/side)")
    parser.add_argument("--folds", default="0", help="comma list of folds (default 0)")
    parser.add_argument("--recipe", action="append", nargs="+", required=True,
                        metavar="NAME RUN_DIR CONFIG [key=value ...]",
                        help="a recipe; the first one is the baseline of the Wilcoxon tests")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the timings (default 2)")
    parser.add_argument("--resume", action="store_true", help="continue interrupted folds from last.pt")
    args = parser.parse_args(argv)
    if any(len(spec) < 3 for spec in args.recipe):
        parser.error("--recipe needs NAME RUN_DIR CONFIG [key=value ...]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recipes = [Recipe(spec[0], Path(spec[1]), spec[2], spec[3:]) for spec in args.recipe]
    folds = [int(k) for k in args.folds.split(",") if k.strip()]
    result = compare(recipes, args.data, folds, args.threads, args.resume)
    table = format_table(result)
    out = Path(args.out)
    write_json(out / "recipes.json", result)
    write_text(out / "recipes.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
