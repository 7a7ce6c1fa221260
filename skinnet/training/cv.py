"""K-fold cross-validation of one config: the folds one after another, then the pooled out-of-fold scores.

The run folder's layout is :mod:`skinnet.runs`. After every call of :func:`run_cv` it holds the pooled
results of the finished folds: every out-of-fold image (``fold``, ``id`` and the metrics) and the summary,
i.e. the pooled out-of-fold means (each image counted once, ``n`` = images), their sd over images, and the
mean ± sd over folds of the per-fold means.

Finished folds (``val_summary.json`` written and every epoch logged) are skipped, so an interrupted study
is continued by running the same command again (with ``--resume`` to continue the unfinished fold from its
``last.pt`` instead of restarting it), and folds trained in parallel elsewhere are pooled by a final call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinnet import runs
from skinnet.config import Config
from skinnet.data.atomic import json_safe
from skinnet.data.cache import load_cached_pairs
from skinnet.data.layout import find_pairs
from skinnet.metrics import METRIC_NAMES, mean_metrics, sample_sd
from skinnet.runs import RunError, fold_finished
from skinnet.training.trainer import train_fold


@dataclass
class CVResult:
    """What one call of :func:`run_cv` did, and the run's summary afterwards."""

    trained: list[int]
    skipped: list[int]
    summary: dict[str, Any]


def prepare_run(config: Config, data_root: str | Path, run_dir: str | Path) -> list[list[str]]:
    """Create the run's split if missing and fill the resize cache; returns the folds.

    Doing this once before folds run in parallel keeps them from decoding the images all at the same time.
    """
    runs.check_same_model(config, run_dir)
    pairset = find_pairs(data_root)
    cached = load_cached_pairs(pairset.pairs, config.data.image_size, config.data.cache_dir)
    return runs.load_or_create_split(run_dir, cached.ids, config.train.n_folds, config.train.seed)


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
                progress(f"fold {fold}: finished before, skipped ({runs.fold_dir(run_dir, fold)})")
            continue
        result = train(config, data_root, run_dir, fold=fold, resume=resume)
        trained.append(fold)
        if progress:
            progress(f"fold {fold}: kept epoch {result.kept_epoch + 1}, out-of-fold DC "
                     f"{result.val_summary['DC']:.4f} over {int(result.val_summary['n'])} images")
    summary = summarize_cv(run_dir, data_root, epochs=config.train.epochs)
    return CVResult(trained, skipped, summary)


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
    split = runs.read_split(run_dir)
    done = [k for k in range(len(split)) if fold_finished(run_dir, k, epochs)]
    rows: list[dict[str, Any]] = []
    per_fold: dict[str, dict[str, float]] = {}
    for fold in done:
        fold_rows = runs.read_metrics_csv(runs.fold_paths(run_dir, fold).val_metrics)
        per_fold[str(fold)] = mean_metrics(fold_rows)
        rows += [{"fold": fold, **row} for row in fold_rows]
    pooled = mean_metrics(rows)
    summary: dict[str, Any] = json_safe({  # undefined statistics (one fold, one image) become None
        "data": runs.relative_to_run(data_root, run_dir) if data_root else None,  # relative: see skinnet.runs
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
    runs.write_cv_results(run_dir, rows, summary)
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
