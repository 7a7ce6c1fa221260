"""Results of ``scripts/paper_fold0.py``: fold-0 DC/JI per image, paired Wilcoxon tests, cost, speed, curves.

Reads ``RUN/job.json`` and ``RUN/<network>/fold_0/`` and writes to ``OUT_DIR``:

- ``results.md``: the table for docs/results (parameters, GFLOPs at the input size, training images/s and peak
  memory from the probe, epochs run, seconds per epoch, wall time, DC and JI), the paired two-sided Wilcoxon
  signed-rank tests (``scipy.stats.wilcoxon``) of per-image DC and JI, SkinNet − U-Net and SkinNet − no
  dilation, and what ran on which card; ``results.json``: the same numbers;
- ``per_image.csv``: DC and JI of every network for every validation image;
- ``fig2_<network>.{png,svg}``: training and validation loss, DC and JI per epoch (Fig. 2 of the paper);
- ``<network>/``: ``log.csv``, ``val_metrics.csv``, ``val_summary.json``, ``config.json``, ``train.log``
  (never the weights), and ``job.json``.

    python scripts/paper_fold0_results.py --run runs/paper_fold0 --out-dir runs/paper_fold0/results
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

from skinnet import runs
from skinnet.config import config_from_dict, load_config
from skinnet.data.atomic import write_json, write_text
from skinnet.data.tables import write_csv
from skinnet.evaluation.comparison import count_flops, count_parameters, paired_wilcoxon
from skinnet.evaluation.report import average_curves, plot_curves
from skinnet.metrics import METRIC_NAMES, mean_metrics, sample_sd
from skinnet.runs import fold_paths, read_log, read_metrics_csv

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "isic2017_paper.yaml"
COPIED = ("log.csv", "val_metrics.csv", "val_summary.json", "train.log")
COMPARISONS = (("skinnet", "unet"), ("skinnet", "nodilation"))


def per_image(run: Path, name: str) -> dict[str, dict[str, Any]]:
    """The fold-0 validation metrics of one network, by image ID (empty if it predicted none)."""
    path = fold_paths(run / name, 0).val_metrics
    return {str(row["id"]): row for row in read_metrics_csv(path)} if path.exists() else {}


def network_row(run: Path, name: str, job: dict[str, Any]) -> dict[str, Any]:
    """Size, cost, speed, epochs, time and scores of one network."""
    saved = run / name / runs.CONFIG  # written when training starts; else rebuilt from the job's overrides
    config = (config_from_dict(json.loads(saved.read_text())) if saved.exists()
              else load_config(CONFIG, job["overrides"][name]))
    log = read_log(fold_paths(run / name, 0).log)
    rows = list(per_image(run, name).values())
    scores = mean_metrics(rows)
    return {
        "label": job["labels"][name], "overrides": job["overrides"][name], "image_size": config.data.image_size,
        "parameters": count_parameters(config), "gflops": count_flops(config) / 1e9,
        "train_images_per_second": job["probe"][name]["images_per_second"],
        "peak_memory_gib": job["probe"][name]["peak_memory_gib"],
        "epochs_planned": job["plan"]["epochs"], "epochs_run": len(log),
        "median_epoch_seconds": statistics.median(row["seconds"] for row in log) if log else math.nan,
        "best_epoch": 1 + max(log, key=lambda row: row["val_dc"])["epoch"] if log else None,
        **{key: job["status"][name].get(key) for key in ("status", "wall_seconds", "predicted_by_job")},
        **scores, **{f"{metric}_sd": sample_sd(row[metric] for row in rows) for metric in METRIC_NAMES},
    }


def wilcoxon_tests(scores: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """SkinNet − U-Net and SkinNet − no dilation, per-image DC and JI, over the images both predicted."""
    tests = {}
    for first, second in COMPARISONS:
        if scores.get(first) and scores.get(second):
            tests[f"{first}-{second}"] = {metric: paired_wilcoxon(
                {key: row[metric] for key, row in scores[first].items()},
                {key: row[metric] for key, row in scores[second].items()}) for metric in ("DC", "JI")}
    return tests


def _p(test: dict[str, Any]) -> str:
    p = test["p_value"]
    return "– (every difference 0)" if p is None or math.isnan(p) else f"{p:.3g}"


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown: what ran where, the table, the tests, the notes."""
    job, rows = result["job"], result["networks"]
    size = next(iter(rows.values()))["image_size"]
    lines = []
    if not job["cuda"]:
        lines += ["**Ran on the CPU: a toy-scale check of the script, not a result.**", ""]
    lines += [f"Fold 0 of the saved split ({job['n_train']} training / {job['n_val']} validation images), "
              f"{size} px, on {job['device']} (torch {job['torch']}); the networks trained at once, "
              f"{job['plan']['epochs']} epochs each of {job['nominal_epochs']} nominal, chosen to fit a "
              f"{job['budget_seconds']:.0f} s budget; preparing, probing, training and predicting took "
              f"{result['wall_seconds']:.0f} s.", "",
              f"| network | parameters | GFLOPs/image ({size} px) | training images/s (alone) | "
              "peak GPU memory (GiB) | epochs run | s/epoch (all at once) | wall (s) | DC | JI |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows.values():
        memory = "–" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.2f}"
        lines.append(f"| {row['label']} | {row['parameters']:,} | {row['gflops']:.2f} | "
                     f"{row['train_images_per_second']:.1f} | {memory} | {row['epochs_run']} | "
                     f"{row['median_epoch_seconds']:.1f} | {row['wall_seconds']:.0f} | "
                     f"{row['DC']:.3f} ± {row['DC_sd']:.3f} | {row['JI']:.3f} ± {row['JI_sd']:.3f} |")
    lines += ["", "| paired two-sided Wilcoxon signed-rank test, per image | n | median ΔDC | p (DC) | "
                  "median ΔJI | p (JI) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    earlier = result.get("earlier", {})
    for key, test in result["wilcoxon"].items():
        first, second = (rows[name]["label"] if name in rows else earlier[name] for name in key.split("-"))
        lines.append(f"| {first} − {second} | {test['DC']['n']} | "
                     f"{test['DC']['median_difference']:+.4f} | {_p(test['DC'])} | "
                     f"{test['JI']['median_difference']:+.4f} | {_p(test['JI'])} |")
    notes = ["DC, JI: mean ± sd over the n validation images, each predicted at its full size by the model of "
             "the epoch with the best validation DC.",
             "Training images/s and peak memory: a few training steps of each network alone on the device "
             "(AMP, channels_last); s/epoch: the median logged epoch, with the networks sharing the device.",
             "GFLOPs: one forward pass of one image (torch.utils.flop_counter; a multiply-add counts 2)."]
    notes += [f"{row['label']}: {row['status']} after {row['epochs_run']} epochs; "
              + ("its best model so far predicted the validation images." if row["predicted_by_job"]
                 else "no validation predictions.") for row in rows.values() if row["status"] != "finished"]
    if job["plan"]["dropped"]:
        notes.append(f"Left out for time: {', '.join(job['plan']['dropped'])}.")
    return "\n".join([*lines, "", *(f"- {note}" for note in notes)]) + "\n"


def collect(run: Path, out: Path, earlier: Path | None = None) -> dict[str, Any]:
    """Compute the results of ``run`` and write them, the curves and the copied logs to ``out``.

    ``earlier``: the results folder of an earlier run on the same split; the per-image scores of its networks
    that this run did not train (``<network>/val_metrics.csv``) join the Wilcoxon tests (e.g. a no-dilation
    network trained alone, tested against the SkinNet of the earlier run).
    """
    job = json.loads((run / "job.json").read_text())
    names = job["plan"]["networks"]
    scores = {name: per_image(run, name) for name in names}
    labels = {}
    for first, second in COMPARISONS if earlier is not None else ():
        for name in (first, second):
            path = earlier / name / "val_metrics.csv"
            if name not in scores and path.exists():
                scores[name] = {str(row["id"]): row for row in read_metrics_csv(path)}
                labels[name] = f"{name} (earlier run: {earlier})"
    result = {"job": job, "networks": {name: network_row(run, name, job) for name in names},
              "wilcoxon": wilcoxon_tests(scores), "wall_seconds": job["wall_seconds"], "earlier": labels}
    ids = sorted(set().union(*scores.values()))
    columns = [f"{metric}_{name}" for name in names for metric in ("DC", "JI")]
    write_csv(out / "per_image.csv", [{"id": key, **{f"{metric}_{name}": scores[name][key][metric]
                                                      for name in names for metric in ("DC", "JI")
                                                      if key in scores[name]}} for key in ids], ["id", *columns])
    for name in names:
        log = read_log(fold_paths(run / name, 0).log)
        if log:
            plot_curves(average_curves({0: log}), out / f"fig2_{name}", 1)
        (out / name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / name / runs.CONFIG, out / name / runs.CONFIG)
        for file in COPIED:
            if (fold_paths(run / name, 0).folder / file).exists():
                shutil.copy2(fold_paths(run / name, 0).folder / file, out / name / file)
    shutil.copy2(run / "job.json", out / "job.json")
    write_json(out / "results.json", result)
    write_text(out / "results.md", markdown(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/paper_fold0", help="the run folder of scripts/paper_fold0.py")
    parser.add_argument("--out-dir", help="where to write (default RUN/results)")
    parser.add_argument("--earlier", help="the results folder of an earlier run of the job on the same split "
                                          "(e.g. docs/paper_fold0): its networks' per-image scores join the tests")
    args = parser.parse_args(argv)
    out = Path(args.out_dir or Path(args.run) / "results")
    collect(Path(args.run), out, Path(args.earlier) if args.earlier else None)
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
