"""The run folder: the one owner of every path in it and of every reader and writer of its files.

Like nnU-Net's ``get_output_folder``, nothing else in the package spells these names::

    RUN/
      splits.json           the k-fold split, seeded, user-editable      read_split, load_or_create_split
      config.json           the config the run trains with                 write_config, read_config
      cv_metrics.csv        every out-of-fold image of the finished folds  write_cv_results, read_metrics_csv
      cv_summary.json       pooled out-of-fold scores                      write_cv_results, read_cv_summary
      fold_K/  (all/)       one fold (the all-data model)                  fold_paths
        last.pt             full training state after every epoch
        best.pt             the same for the kept epoch
        best.safetensors    the kept model (see skinnet.networks.files)
        log.csv             one row per epoch                              read_log, write_log
        tensorboard/        the same as TensorBoard events
        val_predictions/    out-of-fold masks at full size
        val_metrics.csv     per-image scores of those masks                read_metrics_csv
        val_summary.json    their means                                    write_fold_summary

Summaries record paths relative to the run folder (:func:`relative_to_run`), so a run folder can be moved
or copied into the docs without naming the machine that made it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinnet.config import Config
from skinnet.data.atomic import write_json
from skinnet.data.layout import Pair, find_pairs
from skinnet.data.splits import fold_ids, load_folds, load_or_create_folds
from skinnet.data.tables import read_csv, write_csv
from skinnet.metrics import METRIC_NAMES

SPLITS = "splits.json"
CONFIG = "config.json"
CV_METRICS = "cv_metrics.csv"
CV_SUMMARY = "cv_summary.json"
ALL_DATA = "all"
FOLD_PATTERN = re.compile(r"fold_(\d+)")
LOG_COLUMNS = ("epoch", "train_loss", "train_dc", "train_ji", "val_loss", "val_dc", "val_ji", "lr", "seconds")


class RunError(ValueError):
    """A run folder that does not fit the request (no split, another model, no finished fold, ...)."""


@dataclass(frozen=True)
class FoldPaths:
    """The files of one fold's folder (``fold_K/``, or ``all/`` for the all-data model)."""

    folder: Path
    last_checkpoint: Path
    kept_checkpoint: Path
    kept_weights: Path
    log: Path
    tensorboard: Path
    val_predictions: Path
    val_metrics: Path
    val_summary: Path

    @classmethod
    def of(cls, folder: Path) -> FoldPaths:
        """The paths inside a fold folder."""
        return cls(folder, folder / "last.pt", folder / "best.pt", folder / "best.safetensors", folder / "log.csv",
                   folder / "tensorboard", folder / "val_predictions", folder / "val_metrics.csv",
                   folder / "val_summary.json")


def fold_paths(run_dir: str | Path, fold: int | None) -> FoldPaths:
    """The paths of fold ``fold`` of a run; ``None`` is the all-data model."""
    return FoldPaths.of(Path(run_dir) / (ALL_DATA if fold is None else f"fold_{fold}"))


def fold_dir(run_dir: str | Path, fold: int | None) -> Path:
    """The folder of fold ``fold`` (``None``: the all-data model)."""
    return fold_paths(run_dir, fold).folder


def fold_models(run_dir: str | Path) -> list[Path]:
    """The kept model of every fold folder of a run that has one, in fold order.

    Raises:
        RunError: no fold of the run has a model.
    """
    found: list[tuple[int, Path]] = []
    for folder in Path(run_dir).iterdir() if Path(run_dir).is_dir() else []:
        match = FOLD_PATTERN.fullmatch(folder.name)
        weights = FoldPaths.of(folder).kept_weights
        if match and weights.is_file():
            found.append((int(match.group(1)), weights))
    if not found:
        raise RunError(f"{run_dir}: no fold_K/{FoldPaths.of(Path()).kept_weights.name} found; is it a run folder "
                       "written by skinnet cv?")
    return [path for _, path in sorted(found)]


def splits_path(run_dir: str | Path) -> Path:
    """Where the run's split is."""
    return Path(run_dir) / SPLITS


def read_split(run_dir: str | Path, ids: Sequence[str] | None = None) -> list[list[str]]:
    """The folds of the run's split, checked: well formed, no ID twice and, given ``ids``, none unknown.

    Raises:
        RunError: the run folder has no split.
        SplitError: the split file is malformed or does not match ``ids``.
    """
    path = splits_path(run_dir)
    if not path.is_file():
        raise RunError(f"{path}: no split file; is {run_dir} a run folder written by skinnet cv or train?")
    return load_folds(path, ids)


def load_or_create_split(run_dir: str | Path, ids: Sequence[str], n_folds: int, seed: int) -> list[list[str]]:
    """The run's split, created from ``seed`` if absent (see :func:`skinnet.data.splits.load_or_create_folds`)."""
    return load_or_create_folds(splits_path(run_dir), list(ids), n_folds, seed)


@dataclass(frozen=True)
class OutOfFold:
    """One fold of a cross-validation run that kept a model: what its out-of-fold predictions need.

    Attributes:
        fold: the fold's number.
        model: the model it kept (``fold_K/best.safetensors``).
        validation: the pairs it was validated on and never trained on, in the split's order.
        training: the pairs it was trained on.
    """

    fold: int
    model: Path
    validation: list[Pair]
    training: list[Pair]


def out_of_fold(run_dir: str | Path, data_root: str | Path, folds: Iterable[int] | None = None,
                on_missing: Callable[[str], None] | None = None) -> Iterator[OutOfFold]:
    """Each fold of a run (or each of ``folds``) that kept a model, with its pairs from ``data_root``: the one
    loop over a run's out-of-fold data (model selection, confidence, the benchmarks).

    Args:
        run_dir: the cross-validation run.
        data_root: the data it was trained on (any layout :func:`~skinnet.data.layout.find_pairs` reads).
        folds: the folds to take, in this order; ``None``: every fold of the split.
        on_missing: told, in one line, of each fold left out because it kept no model.

    Raises:
        RunError: the run folder has no split.
        SplitError: the split names images the data does not have.
    """
    pairs = {pair.id: pair for pair in find_pairs(data_root).pairs}
    split = read_split(run_dir, sorted(pairs))
    for fold in range(len(split)) if folds is None else folds:
        training, validation = fold_ids(split, fold)
        model = fold_paths(run_dir, fold).kept_weights
        if not model.is_file():
            if on_missing is not None:
                on_missing(f"fold {fold}: no {model.name}; its {len(validation)} images are left out")
            continue
        yield OutOfFold(fold, model, [pairs[key] for key in validation], [pairs[key] for key in training])


def share_split(source_run: str | Path, target_run: str | Path) -> None:
    """Give run ``target_run`` the split of ``source_run``; refuse if it already has another one.

    Raises:
        RunError: ``target_run`` holds a different split.
    """
    source, target = splits_path(source_run), splits_path(target_run)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    elif read_split(source_run) != read_split(target_run):
        raise RunError(f"{target} differs from {source}: the models would not be compared on the same folds")


def write_config(run_dir: str | Path, config: Config) -> None:
    """Record the config the run trains with."""
    write_json(Path(run_dir) / CONFIG, config.to_dict())


def read_config(run_dir: str | Path) -> dict[str, Any] | None:
    """The config a run recorded, as a dict; ``None`` if it has none (a run made before it was recorded).

    Raises:
        RunError: the file is not a JSON object.
    """
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{path}: not a JSON config ({err})") from err
    if not isinstance(saved, dict):
        raise RunError(f"{path}: not a JSON object")
    return saved


def check_same_model(config: Config, run_dir: str | Path) -> None:
    """Refuse to mix networks in one run folder: its folds would be pooled into one result.

    Raises:
        RunError: the run's recorded config describes another network or input size.
    """
    saved = read_config(run_dir)
    if saved is None:
        return
    current = config.to_dict()
    for section, key in (("model", None), ("data", "image_size")):
        old, new = saved.get(section, {}), current[section]
        if key is not None:
            old, new = old.get(key), new[key]
        if old != new:
            name = section if key is None else f"{section}.{key}"
            raise RunError(f"{run_dir} was trained with {name} = {old}, the config asks for {new}; "
                           "use another --out for a different network")


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a training log (``FoldPaths.log``), numbers as floats and the epoch as int; ``[]`` if absent."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{key: (int(value) if key == "epoch" else float(value)) for key, value in row.items()}
                for row in csv.DictReader(handle)]


def write_log(path: str | Path, rows: Sequence[dict[str, float]]) -> None:
    """Rewrite a training log atomically with ``rows``."""
    write_csv(path, list(rows), LOG_COLUMNS)


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Per-image rows of a metrics CSV (``val_metrics.csv``, ``cv_metrics.csv``): metrics as floats, IDs as
    they were before :func:`~skinnet.data.tables.write_csv` neutralised any that look like a formula."""
    return [{key: float(value) if key in METRIC_NAMES else value for key, value in row.items()}
            for row in read_csv(path)[1]]


def write_fold_summary(paths: FoldPaths, summary: dict[str, Any]) -> None:
    """Write a fold's ``val_summary.json`` (strict JSON: an undefined mean is null, never NaN)."""
    write_json(paths.val_summary, summary)


def fold_finished(run_dir: str | Path, fold: int, epochs: int | None = None) -> bool:
    """Whether a fold is done: its summary exists and its log has epochs ``0..epochs-1``.

    Args:
        run_dir: the run folder.
        fold: the fold.
        epochs: the epochs the config asks for; ``None`` accepts any logged length.
    """
    paths = fold_paths(run_dir, fold)
    if not paths.val_summary.is_file():
        return False
    logged = {int(row["epoch"]) for row in read_log(paths.log)}
    return bool(logged) and (epochs is None or set(range(epochs)) <= logged)


def write_cv_results(run_dir: str | Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Write the pooled out-of-fold rows (``cv_metrics.csv``) and their summary (``cv_summary.json``)."""
    write_csv(cv_metrics_path(run_dir), rows, ["fold", "id", *METRIC_NAMES])
    write_json(cv_summary_path(run_dir), summary)


def cv_metrics_path(run_dir: str | Path) -> Path:
    """Where the pooled out-of-fold rows are."""
    return Path(run_dir) / CV_METRICS


def cv_summary_path(run_dir: str | Path) -> Path:
    """Where the pooled out-of-fold summary is."""
    return Path(run_dir) / CV_SUMMARY


def read_cv_summary(run_dir: str | Path) -> dict[str, Any]:
    """The run's pooled out-of-fold summary.

    Raises:
        RunError: the run has none yet.
    """
    path = cv_summary_path(run_dir)
    if not path.is_file():
        raise RunError(f"{path} not found: run `skinnet cv --out {run_dir} ...` first (finished folds are "
                       "skipped, so it only pools them)")
    return json.loads(path.read_text())


def relative_to_run(path: str | Path, run_dir: str | Path) -> str:
    """``path`` as recorded in a run's summaries: relative to the run folder (``os.path.relpath``)."""
    return os.path.relpath(Path(path).resolve(), Path(run_dir).resolve())


def resolve_from_run(recorded: str, run_dir: str | Path) -> Path:
    """A path recorded by :func:`relative_to_run` (or an absolute one from older runs), as a usable path."""
    path = Path(recorded)
    return path if path.is_absolute() else Path(run_dir) / path


