"""SkinNet against the plain U-Net on equal terms: same folds, input size, epochs, seed and augmentation.

Both networks are cross-validated by the library behind ``skinnet cv`` from one config that differs only in
``model.name``, into ``OUT/skinnet`` and ``OUT/unet``, which share one ``splits.json``. Prints one table:
parameters, FLOPs per image at the config's input size (``torch.utils.flop_counter``, a multiply-add counts
2), training seconds per image (one training step at the config's batch size and input size, timed for both
networks in this run on this machine, so that the ratio holds even when the folds were trained elsewhere), DC
and JI as mean ± sd over folds,
and a paired two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) of the per-image out-of-fold
DC over the images both runs predicted. Finished folds are skipped, so an interrupted comparison continues
where it stopped (``--resume`` also continues an interrupted fold). Writes ``OUT/comparison.{json,md}``.

    python benchmarks/compare_models.py --config configs/cpu.yaml --data ../shared/data/isic2017_train \\
        --out runs/compare [--folds 0,1,2,3,4] [--epochs N] [--resume] [key=value ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.config import load_config
from skinnet.data.atomic import write_json, write_text
from skinnet.evaluation.comparison import (
    count_flops,
    count_parameters,
    machine_name,
    paired_wilcoxon,
    training_seconds_per_image,
)
from skinnet.metrics import mean_metrics, sample_sd
from skinnet.runs import fold_paths, read_log, read_metrics_csv, share_split
from skinnet.training.cv import prepare_run, run_cv

MODELS = {"skinnet": "SkinNet", "unet": "U-Net"}


def seconds_per_epoch(run_dir: Path, folds: list[int]) -> float:
    """Median wall time of an epoch over the folds' logs (the median ignores the first epoch's warm-up)."""
    seconds = [row["seconds"] for fold in folds for row in read_log(fold_paths(run_dir, fold).log)]
    return statistics.median(seconds) if seconds else math.nan


def fold_means(run_dir: Path, folds: list[int]) -> list[dict[str, float]]:
    """Mean metrics of each fold's out-of-fold images."""
    return [mean_metrics(read_metrics_csv(fold_paths(run_dir, fold).val_metrics)) for fold in folds]


def per_image_dc(run_dir: Path, folds: list[int]) -> dict[str, float]:
    """Out-of-fold DC of each image of the folds, by ID."""
    return {str(row["id"]): row["DC"] for fold in folds
            for row in read_metrics_csv(fold_paths(run_dir, fold).val_metrics)}


def compare(config_path: str | None, data: str, out: Path, folds: list[int] | None, overrides: list[str],
            resume: bool = False) -> dict[str, Any]:
    """Cross-validate both networks on the same split and gather the numbers of the table."""
    configs = {name: load_config(config_path, [*overrides, f"model.name={name}"]) for name in MODELS}
    runs = {name: out / name for name in MODELS}
    first, *others = MODELS
    prepare_run(configs[first], data, runs[first])
    for name in others:
        share_split(runs[first], runs[name])
    result: dict[str, Any] = {"config": config_path, "overrides": overrides, "data": str(data), "models": {}}
    for name, config in configs.items():
        summary = run_cv(config, data, runs[name], folds=folds, resume=resume, progress=print).summary
        done = folds if folds is not None else list(range(summary["n_folds"]))
        scores = fold_means(runs[name], done)
        result["folds"] = done
        result["models"][name] = {
            "run_dir": str(runs[name]), "parameters": count_parameters(config), "flops": count_flops(config),
            "image_size": config.data.image_size, "seconds_per_epoch_logged": seconds_per_epoch(runs[name], done),
            "train_seconds_per_image": training_seconds_per_image(config),
            **{f"{metric}_{stat}": value for metric in ("DC", "JI") for stat, value in (
                ("mean", float(np.mean([s[metric] for s in scores]))),
                ("sd", sample_sd(s[metric] for s in scores)))},
        }
    result["timed_on"] = machine_name(configs[first])
    result["wilcoxon_dc"] = paired_wilcoxon(per_image_dc(runs["skinnet"], result["folds"]),
                                            per_image_dc(runs["unet"], result["folds"]))
    return result


def format_table(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table and one line for the test."""
    size = next(iter(result["models"].values()))["image_size"]
    lines = [f"| model | parameters | GFLOPs/image ({size} px) | training s/image | DC (mean ± sd over folds) | "
             "JI (mean ± sd over folds) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, row in result["models"].items():
        lines.append(f"| {MODELS[name]} | {row['parameters']:,} | {row['flops'] / 1e9:.3f} | "
                     f"{row['train_seconds_per_image']:.4f} | {row['DC_mean']:.4f} ± {row['DC_sd']:.4f} | "
                     f"{row['JI_mean']:.4f} ± {row['JI_sd']:.4f} |")
    test = result["wilcoxon_dc"]
    lines += ["", f"Training s/image: one training step per image, both networks timed in this run on "
                  f"{result['timed_on']}.",
              f"Folds {','.join(map(str, result['folds']))}. Paired Wilcoxon signed-rank test of per-image "
                  f"out-of-fold DC, SkinNet − U-Net, n = {test['n']} images: median difference "
                  f"{test['median_difference']:+.4f}, W = {test['statistic']:.1f}, p = {test['p_value']:.3g}"]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML config shared by both models (default: the package defaults)")
    parser.add_argument("--data", required=True, help="data folder (any layout skinnet reads)")
    parser.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    parser.add_argument("--folds", help="comma list of folds, e.g. 0,1 (default: all folds of the split)")
    parser.add_argument("--epochs", type=int, help="train.epochs for both models")
    parser.add_argument("--resume", action="store_true", help="continue interrupted folds from last.pt")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for both models")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = [*args.overrides, *([f"train.epochs={args.epochs}"] if args.epochs else [])]
    folds = [int(k) for k in args.folds.split(",") if k.strip()] if args.folds else None
    out = Path(args.out)
    result = compare(args.config, args.data, out, folds, overrides, resume=args.resume)
    table = format_table(result)
    write_json(out / "comparison.json", result)
    write_text(out / "comparison.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
