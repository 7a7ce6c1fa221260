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
    python benchmarks/compare_recipes.py --data DATA --out runs/sizes --sizes 128,192,256,320 \
        --recipe pretrained runs/pretrained configs/pretrained.yaml
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinnet.config import Config, load_config
from skinnet.data.atomic import write_json, write_text
from skinnet.evaluation.comparison import (
    count_flops,
    count_parameters,
    machine_name,
    onnx_seconds_per_image,
    paired_wilcoxon,
    training_seconds_per_image,
)
from skinnet.metrics import mean_metrics, sample_sd
from skinnet.runs import fold_paths, read_log, read_metrics_csv, share_split
from skinnet.training.cv import prepare_run, run_cv


@dataclass
class Recipe:
    name: str
    run_dir: Path
    config_path: str
    overrides: list[str]

    def config(self) -> Config:
        return load_config(self.config_path, self.overrides)


def per_image(run_dir: Path, folds: list[int], metric: str) -> dict[str, float]:
    """Out-of-fold ``metric`` of each image of the folds, by ID."""
    return {str(row["id"]): row[metric] for fold in folds
            for row in read_metrics_csv(fold_paths(run_dir, fold).val_metrics)}


def recipe_row(recipe: Recipe, folds: list[int], threads: int) -> dict[str, Any]:
    """The table's numbers for one trained recipe."""
    config = recipe.config()
    scores = [mean_metrics(read_metrics_csv(fold_paths(recipe.run_dir, k).val_metrics)) for k in folds]
    logs = [read_log(fold_paths(recipe.run_dir, k).log) for k in folds]
    row: dict[str, Any] = {
        "run_dir": str(recipe.run_dir), "config": recipe.config_path, "overrides": recipe.overrides,
        "encoder": config.model.encoder, "width": config.model.width, "image_size": config.data.image_size,
        "parameters": count_parameters(config), "flops": count_flops(config),
        "train_seconds_per_image": training_seconds_per_image(config),
        "onnx_seconds_per_image": onnx_seconds_per_image(config, threads),
        "epochs": [len(log) for log in logs],
        "fold_minutes": [sum(r["seconds"] for r in log) / 60 for log in logs],
        # the median epoch: robust to epochs slowed by other jobs on the machine
        "median_epoch_seconds": statistics.median(r["seconds"] for log in logs for r in log),
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


def size_costs(recipe: Recipe, sizes: list[int], threads: int) -> list[dict[str, Any]]:
    """What the recipe's network costs on this machine at each input size: FLOPs, a training step and an
    ONNX Runtime forward pass per image."""
    torch.set_num_threads(threads)
    rows = []
    for size in sizes:
        config = load_config(recipe.config_path, [*recipe.overrides, f"data.image_size={size}"])
        rows.append({"size": size, "flops": count_flops(config),
                     "train_seconds_per_image": training_seconds_per_image(config),
                     "onnx_seconds_per_image": onnx_seconds_per_image(config, threads)})
    return rows


def format_sizes(name: str, rows: list[dict[str, Any]], timed_on: str) -> str:
    lines = [f"| {name}: input px | GFLOPs/image | training s/image | ONNX CPU s/image |",
             "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['size']} | {r['flops'] / 1e9:.2f} | {r['train_seconds_per_image']:.3f} | "
              f"{r['onnx_seconds_per_image']:.4f} |" for r in rows]
    return "\n".join([*lines, "", f"Timed in one run on {timed_on}."])


def counts(recipes: list[Recipe]) -> list[dict[str, Any]]:
    """Each recipe's network size: parameters and FLOPs of one image at its input size."""
    rows = []
    for recipe in recipes:
        config = recipe.config()
        rows.append({"recipe": recipe.name, "overrides": recipe.overrides, "encoder": config.model.encoder,
                     "width": config.model.width, "image_size": config.data.image_size,
                     "parameters": count_parameters(config), "flops": count_flops(config)})
    return rows


def format_counts(rows: list[dict[str, Any]]) -> str:
    lines = ["| recipe | encoder | decoder width | input px | parameters | GFLOPs/image |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['recipe']} | {r['encoder']} | {r['width']} | {r['image_size']} | {r['parameters']:,} | "
              f"{r['flops'] / 1e9:.2f} |" for r in rows]
    note = "FLOPs of one forward pass (torch.utils.flop_counter, a multiply-add counts 2)."
    return "\n".join([*lines, "", note])


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table and its notes."""
    lines = ["| recipe | encoder | width | input px | parameters | GFLOPs/image | training s/image | "
             "ONNX CPU s/image | epochs | s/epoch (median) | DC (mean ± sd over folds) | "
             "JI (mean ± sd over folds) | "
             f"DC − {result['baseline']} (median, Wilcoxon p) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def spread(row: dict[str, Any], metric: str) -> str:  # one fold has no sd over folds
        sd = row[f"{metric}_sd"]
        return f"{row[f'{metric}_mean']:.4f}" + ("" if math.isnan(sd) else f" ± {sd:.4f}")

    for name, row in result["recipes"].items():
        test = row.get("wilcoxon_DC")
        versus = f"{test['median_difference']:+.4f}, p = {test['p_value']:.2g}" if test else "baseline"
        lines.append(
            f"| {name} | {row['encoder']} | {row['width']} | {row['image_size']} | {row['parameters']:,} | "
            f"{row['flops'] / 1e9:.2f} | {row['train_seconds_per_image']:.3f} | "
            f"{row['onnx_seconds_per_image']:.4f} | {'/'.join(map(str, row['epochs']))} | "
            f"{row['median_epoch_seconds']:.0f} | {spread(row, 'DC')} | {spread(row, 'JI')} | {versus} |")
    n = next((r["wilcoxon_DC"]["n"] for r in result["recipes"].values() if "wilcoxon_DC" in r), 0)
    lines += ["", f"Folds {','.join(map(str, result['folds']))} of one split ({n} out-of-fold images per "
                  f"paired test). Training and ONNX times measured in this run on {result['timed_on']}; "
                  "s/epoch is the median logged epoch (training and validation) of the folds' runs."]
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
    parser.add_argument("--counts", action="store_true", help="only count each recipe's parameters and "
                        "FLOPs at its input size (no training, no timing): writes OUT/counts.{json,md}")
    parser.add_argument("--sizes", help="only time the first recipe's network at these input sizes, e.g. "
                        "128,256,384 (no training, no scores): writes OUT/sizes.{json,md}")
    args = parser.parse_args(argv)
    if any(len(spec) < 3 for spec in args.recipe):
        parser.error("--recipe needs NAME RUN_DIR CONFIG [key=value ...]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    recipes = [Recipe(spec[0], Path(spec[1]), spec[2], spec[3:]) for spec in args.recipe]
    out = Path(args.out)
    if args.counts:
        rows = counts(recipes)
        table = format_counts(rows)
        write_json(out / "counts.json", {"counts": rows})
        write_text(out / "counts.md", table + "\n")
        print(table)
        return 0
    if args.sizes:
        rows = size_costs(recipes[0], [int(s) for s in args.sizes.split(",") if s.strip()], args.threads)
        timed_on = machine_name(recipes[0].config())
        table = format_sizes(recipes[0].name, rows, timed_on)
        write_json(out / "sizes.json", {"recipe": recipes[0].name, "timed_on": timed_on, "sizes": rows})
        write_text(out / "sizes.md", table + "\n")
        print(table)
        return 0
    folds = [int(k) for k in args.folds.split(",") if k.strip()]
    result = compare(recipes, args.data, folds, args.threads, args.resume)
    table = format_table(result)
    write_json(out / "recipes.json", result)
    write_text(out / "recipes.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
