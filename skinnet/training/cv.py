"""K-fold cross-validation of one config: the folds one after another, then the pooled out-of-fold scores.

A run folder holds ``splits.json`` (shared by all folds), ``fold_K/`` as :func:`train_fold` writes it, and
after every call of :func:`run_cv`:

- ``cv_metrics.csv``: every out-of-fold image (``fold``, ``id`` and the metrics), all finished folds;
- ``cv_summary.json``: the pooled out-of-fold means (each image counted once, ``n`` = images), their sd over
  images, and the mean ± sd over folds of the per-fold means.

Finished folds (``val_summary.json`` written and every epoch logged) are skipped, so an interrupted study
is continued by running the same command again (with ``--resume`` to continue the unfinished fold from its
``last.pt`` instead of restarting it), and folds trained in parallel elsewhere are pooled by a final call.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinnet.config import Config
from skinnet.data.cache import load_cached_pairs
from skinnet.data.io import json_safe, write_csv, write_json
from skinnet.data.layout import find_pairs
from skinnet.data.splits import load_or_create_folds
from skinnet.metrics import METRIC_NAMES, mean_metrics, sample_sd
from skinnet.training.logs import read_log
from skinnet.training.trainer import train_fold

CV_SUMMARY = "cv_summary.json"
CV_METRICS = "cv_metrics.csv"
SPLITS = "splits.json"


class RunError(ValueError):
    """A run folder that does not fit the request (another model, no finished fold, ...)."""


@dataclass
class CVResult:
    """What one call of :func:`run_cv` did, and the run's summary afterwards."""

    trained: list[int]
    skipped: list[int]
    summary: dict[str, Any]


def fold_dir(run_dir: str | Path, fold: int) -> Path:
    """The output folder of fold ``fold``."""
    return Path(run_dir) / f"fold_{fold}"


def fold_finished(run_dir: str | Path, fold: int, epochs: int | None = None) -> bool:
    """Whether a fold is done: its ``val_summary.json`` exists and its log has epochs ``0..epochs-1``.

    Args:
        run_dir: the run folder.
        fold: the fold.
        epochs: the epochs the config asks for; ``None`` accepts any logged length.
    """
    folder = fold_dir(run_dir, fold)
    if not (folder / "val_summary.json").is_file():
        return False
    logged = {int(row["epoch"]) for row in read_log(folder / "log.csv")}
    return bool(logged) and (epochs is None or set(range(epochs)) <= logged)


def read_split(run_dir: str | Path) -> list[list[str]]:
    """The folds of the run's ``splits.json``.

    Raises:
        RunError: the run folder has no split.
    """
    path = Path(run_dir) / SPLITS
    if not path.is_file():
        raise RunError(f"{path}: no split file; is {run_dir} a run folder written by skinnet cv or train?")
    return json.loads(path.read_text())["folds"]


def check_same_model(config: Config, run_dir: str | Path) -> None:
    """Refuse to mix networks in one run folder: its folds would be pooled into one result.

    Raises:
        RunError: ``run_dir/config.json`` describes another network or input size.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    saved = json.loads(path.read_text())
    current = config.to_dict()
    for section, key in (("model", None), ("data", "image_size")):
        old, new = saved.get(section, {}), current[section]
        if key is not None:
            old, new = old.get(key), new[key]
        if old != new:
            name = section if key is None else f"{section}.{key}"
            raise RunError(f"{run_dir} was trained with {name} = {old}, the config asks for {new}; "
                           "use another --out for a different network")


def prepare_run(config: Config, data_root: str | Path, run_dir: str | Path) -> list[list[str]]:
    """Create the run's split if missing and fill the resize cache; returns the folds.

    Doing this once before folds run in parallel keeps them from decoding the images all at the same time.
    """
    check_same_model(config, run_dir)
    pairset = find_pairs(data_root)
    cached = load_cached_pairs(pairset.pairs, config.data.image_size, config.data.cache_dir)
    return load_or_create_folds(Path(run_dir) / SPLITS, cached.ids, config.train.n_folds, config.train.seed)


def run_cv(config: Config, data_root: str | Path, run_dir: str | Path, folds: Sequence[int] | None = None,
           resume: bool = False, progress: Callable[[str], None] | None = None,
           train: Callable[..., Any] = train_fold) -> CVResult:
    """Train the folds of the run's split one after another, skipping finished ones, and pool the results.

    Args:
        config: the run config (the same for every fold).
        data_root: data folder in any layout :func:`skinnet.data.layout.find_pairs` reads.
        run_dir: the run folder.
        folds: folds to train; ``None`` for all folds of the split.
        resume: continue an unfinished fold from its ``last.pt`` instead of restarting it.
        progress: called with one line per fold (e.g. ``print``).
        train: the function that trains one fold (``train_fold``; replaceable in tests).

    Raises:
        RunError: the run folder holds another network, or a fold outside the split is asked for.
    """
    split = prepare_run(config, data_root, run_dir)
    folds = list(range(len(split))) if folds is None else list(folds)
    outside = [k for k in folds if not 0 <= k < len(split)]
    if outside:
        raise RunError(f"folds {outside} do not exist; the split has folds 0..{len(split) - 1}")
    trained, skipped = [], []
    for fold in folds:
        if fold_finished(run_dir, fold, config.train.epochs):
            skipped.append(fold)
            if progress:
                progress(f"fold {fold}: finished before, skipped ({fold_dir(run_dir, fold)})")
            continue
        result = train(config, data_root, run_dir, fold=fold, resume=resume)
        trained.append(fold)
        if progress:
            progress(f"fold {fold}: best epoch {result.best_epoch + 1}, out-of-fold DC "
                     f"{result.val_summary['DC']:.4f} over {int(result.val_summary['n'])} images")
    summary = summarize_cv(run_dir, data_root, epochs=config.train.epochs)
    return CVResult(trained, skipped, summary)


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Per-image rows of a metrics CSV (``val_metrics.csv``, ``cv_metrics.csv``): metrics as floats."""
    with open(path, newline="") as handle:
        return [{key: float(value) if key in METRIC_NAMES else value for key, value in row.items()}
                for row in csv.DictReader(handle)]


def summarize_cv(run_dir: str | Path, data_root: str | Path | None = None,
                 epochs: int | None = None) -> dict[str, Any]:
    """Pool the out-of-fold metrics of every finished fold; write ``cv_metrics.csv`` and ``cv_summary.json``.

    Args:
        run_dir: the run folder.
        data_root: the data the folds were trained on (recorded for the report's gallery).
        epochs: a fold counts as finished only with this many epochs logged (``None``: any).

    Returns:
        The summary: ``pooled`` (means over all out-of-fold images, ``n`` = images), ``pooled_sd`` (sd over
        images), ``fold_mean`` and ``fold_sd`` (over the per-fold means), ``per_fold``, ``folds_done``,
        ``n_folds`` and ``complete`` (every fold of the split finished).
    """
    run_dir = Path(run_dir)
    split = read_split(run_dir)
    done = [k for k in range(len(split)) if fold_finished(run_dir, k, epochs)]
    rows: list[dict[str, Any]] = []
    per_fold: dict[str, dict[str, float]] = {}
    for fold in done:
        fold_rows = read_metrics_csv(fold_dir(run_dir, fold) / "val_metrics.csv")
        per_fold[str(fold)] = mean_metrics(fold_rows)
        rows += [{"fold": fold, **row} for row in fold_rows]
    pooled = mean_metrics(rows)
    summary: dict[str, Any] = json_safe({  # undefined statistics (one fold, one image) become None
        "run_dir": str(run_dir.resolve()),
        "data": str(Path(data_root).resolve()) if data_root else None,
        "n_folds": len(split),
        "folds_done": done,
        "complete": len(done) == len(split),
        "pooled": pooled,
        "pooled_sd": {name: sample_sd([row[name] for row in rows]) for name in METRIC_NAMES},
        "fold_mean": {name: float(np.mean([per_fold[str(k)][name] for k in done])) if done else math.nan
                      for name in METRIC_NAMES},
        "fold_sd": {name: sample_sd([per_fold[str(k)][name] for k in done]) for name in METRIC_NAMES},
        "per_fold": per_fold,
    })
    write_csv(run_dir / CV_METRICS, rows, ["fold", "id", *METRIC_NAMES])
    write_json(run_dir / CV_SUMMARY, summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The pooled and per-fold scores of a summary as a short plain-text table."""
    done, total = len(summary["folds_done"]), summary["n_folds"]
    lines = [f"cross-validation: {done} of {total} folds finished; out-of-fold images n = "
             f"{int(summary['pooled']['n'])}",
             f"{'metric':<6} {'pooled':>7} {'fold mean':>10} {'fold sd':>8}"]
    for name in METRIC_NAMES:
        values = (summary["pooled"][name], summary["fold_mean"][name], summary["fold_sd"][name])
        lines.append(f"{name:<6} " + " ".join(f"{'-' if v is None else f'{v:.4f}':>{w}}"
                                              for v, w in zip(values, (7, 10, 8), strict=True)))
    return "\n".join(lines)
