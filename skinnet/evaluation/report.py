"""The paper's figure and table for a cross-validation run: Fig. 2 curves, Table I, a best/worst gallery.

``write_report(RUN_DIR)`` reads what ``skinnet cv`` wrote (each fold's log, the pooled out-of-fold scores
and masks; the layout is :mod:`skinnet.runs`) and writes under ``RUN_DIR/report/``:

- ``fig2_curves.png`` / ``.svg``: training and validation loss, DC and JI per epoch, the mean over the
  finished folds with a ± sd band (like Fig. 2 of the paper);
- ``table1.md`` / ``.html``: this run's AC, DC, JI, SE, SP beside the published rows of Table I, each row
  with the data it was measured on;
- ``gallery_oof.png`` (and ``gallery_test.png`` with a test folder): the best and worst images by DC, with
  the prediction (green) and the ground truth (blue) outlined.

Figures are drawn with matplotlib's object-oriented API on the Agg canvas, so no global backend is set.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from skinnet import runs
from skinnet.clinical.overlay import overlay
from skinnet.data.atomic import write_text
from skinnet.data.io import read_image, read_mask
from skinnet.data.layout import LayoutError, find_pairs, isic_folders, mask_file_name
from skinnet.evaluation.holdout import TEST_SUBSET, HoldoutResult, evaluate_holdout
from skinnet.evaluation.published import PUBLISHED_DATA, PUBLISHED_ROWS, PUBLISHED_SOURCE, TABLE_METRICS
from skinnet.runs import RunError, read_log, read_metrics_csv

PANELS = (("loss", "Loss (eq. 1)"), ("dc", "Dice coefficient (DC)"), ("ji", "Jaccard index (JI)"))
MODEL_LABELS = {"skinnet": "SkinNet", "unet": "U-Net"}
# Gallery images are shrunk to this many pixels on their longer side: ISIC originals reach 6000 px.
GALLERY_PIXELS = 384


@dataclass
class Curve:
    """One log column over epochs, across folds: the mean, the sample sd (NaN where < 2 folds), the count."""

    epochs: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    count: np.ndarray


@dataclass
class Report:
    """The files a report wrote, and what it could not draw (with the reason)."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table_markdown: str = ""


@dataclass
class TableRow:
    """A row of Table I: the method, the data it was measured on, and the formatted metrics."""

    method: str
    data: str
    cells: dict[str, str]


def fold_logs(run_dir: str | Path, folds: Sequence[int]) -> dict[int, list[dict[str, float]]]:
    """The training-log rows of each fold that has any."""
    logs = {fold: read_log(runs.fold_paths(run_dir, fold).log) for fold in folds}
    return {fold: rows for fold, rows in logs.items() if rows}


def average_curves(logs: Mapping[int, list[dict[str, float]]]) -> dict[str, Curve]:
    """Mean and sample sd (ddof = 1) over folds of every log column, epoch by epoch.

    Folds may have logged different numbers of epochs: each epoch is averaged over the folds that reached it.
    """
    epochs = np.array(sorted({int(row["epoch"]) for rows in logs.values() for row in rows}), dtype=int)
    position = {epoch: i for i, epoch in enumerate(epochs)}
    columns = sorted({key for rows in logs.values() for row in rows for key in row} - {"epoch"})
    curves = {}
    for column in columns:
        values = np.full((len(logs), len(epochs)), np.nan)
        for i, rows in enumerate(logs.values()):
            for row in rows:
                values[i, position[int(row["epoch"])]] = row.get(column, np.nan)
        present = ~np.isnan(values)
        count = present.sum(axis=0)
        mean = np.where(present, values, 0).sum(axis=0) / np.maximum(count, 1)
        squares = np.where(present, (values - mean) ** 2, 0).sum(axis=0)
        sd = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), np.nan)
        curves[column] = Curve(epochs, np.where(count > 0, mean, np.nan), sd, count)
    return curves


def plot_curves(curves: Mapping[str, Curve], out_base: Path, n_folds: int) -> list[Path]:
    """Draw Fig. 2 (loss, DC, JI; training and validation; mean ± sd band) to ``out_base`` .png and .svg."""
    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, len(PANELS))
    for ax, (key, title) in zip(axes, PANELS, strict=True):
        for split, color, label in (("train", "tab:blue", "training"), ("val", "tab:orange", "validation")):
            curve = curves.get(f"{split}_{key}")
            if curve is None:
                continue
            x = curve.epochs + 1
            ax.plot(x, curve.mean, color=color, label=label)
            band = np.isfinite(curve.sd)
            ax.fill_between(x, curve.mean - np.nan_to_num(curve.sd), curve.mean + np.nan_to_num(curve.sd),
                            where=band, color=color, alpha=0.2, linewidth=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    figure.suptitle(f"Training and validation curves: mean ± sd over {n_folds} fold(s)")
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_suffix(".png"), out_base.with_suffix(".svg")]
    for path in paths:
        figure.savefig(path, dpi=150)
    return paths


def _model_label(run_dir: Path) -> str:
    config = runs.read_config(run_dir) or {}
    name = config.get("model", {}).get("name", "skinnet")
    size = config.get("data", {}).get("image_size")
    return f"{MODEL_LABELS.get(name, name)} (this run{f', {size} px' if size else ''})"


def _data_name(root: str | Path | None, subset: str) -> str:
    """How a table names a data folder: the official subset where the folder has the official layout."""
    if root is None:
        return "(not recorded)"
    root = Path(root)
    return f"ISIC-2017_{subset} in {root.name}" if isic_folders(root, subset) else root.name


def table_rows(run_dir: Path, summary: dict[str, Any], holdout: HoldoutResult | None = None) -> list[TableRow]:
    """Our rows (out-of-fold, and the test folder when given), then the published rows of Table I."""
    label = _model_label(run_dir)
    done, n_folds = len(summary["folds_done"]), summary["n_folds"]
    scope = f"all {n_folds} folds" if summary["complete"] else f"{done} of {n_folds} folds only"
    oof_data = (f"out-of-fold on the training data {_data_name(summary.get('data'), 'Training')} "
                f"({int(summary['pooled']['n'])} images; {n_folds}-fold CV, {scope})")

    def fmt(value: float | None, sd: float | None = None) -> str:
        if value is None:
            return "–"
        return f"{value:.3f}" if sd is None else f"{value:.3f} ± {sd:.3f}"

    rows = [TableRow(label, oof_data, {name: fmt(summary["pooled"][name], summary["fold_sd"][name])
                                       for name in TABLE_METRICS})]
    if holdout is not None:
        test = holdout.summary
        rows.append(TableRow(f"{label.removesuffix(')')}, {holdout.n_models}-fold ensemble)",
                             f"test data {_data_name(holdout.test_dir, TEST_SUBSET)} ({int(test['n'])} images)",
                             {name: fmt(test[name]) for name in TABLE_METRICS}))
    rows += [TableRow(row.method, PUBLISHED_DATA, {name: fmt(value) for name, value in row.values().items()})
             for row in PUBLISHED_ROWS]
    return rows


TABLE_NOTES = (
    f"Published rows: {PUBLISHED_SOURCE}, measured on the {PUBLISHED_DATA}.",
    "Out-of-fold row: every training image scored once, by the fold model that did not train on it; the "
    "value is the mean over images, ± the sd of the fold means.",
    "Rows measured on different data are not a like-for-like comparison.",
)


def table_markdown(rows: Sequence[TableRow]) -> str:
    """Table I as Markdown, with the notes that say what each row was measured on."""
    lines = [f"| Method | Data set | {' | '.join(TABLE_METRICS)} |",
             f"| --- | --- | {' | '.join('---:' for _ in TABLE_METRICS)} |"]
    for row in rows:
        lines.append(f"| {row.method} | {row.data} | {' | '.join(row.cells[name] for name in TABLE_METRICS)} |")
    notes = [f"- {note}" for note in TABLE_NOTES]
    return "\n".join(["**Table I.** Lesion segmentation, ISIC 2017.", "", *lines, "", *notes]) + "\n"


def table_html(rows: Sequence[TableRow]) -> str:
    """Table I as a standalone HTML page."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ("Method", "Data set", *TABLE_METRICS))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in
                                    (row.method, row.data, *(row.cells[name] for name in TABLE_METRICS)))
                   + "</tr>\n" for row in rows)
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in TABLE_NOTES)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Table I</title></head><body>\n"
            "<table border=\"1\" cellpadding=\"4\"><caption>Table I. Lesion segmentation, ISIC 2017.</caption>\n"
            f"<tr>{head}</tr>\n{body}</table>\n{notes}\n</body></html>\n")


def _shrunk(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, ...]:
    scale = GALLERY_PIXELS / max(image.shape[:2])
    if scale >= 1:
        return image, truth, pred
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    masks = [cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0 for m in (truth, pred)]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), *masks


def best_and_worst(rows: Sequence[Mapping[str, Any]], k: int) -> tuple[list[Mapping[str, Any]], ...]:
    """The ``k`` rows of highest DC (best first) and the ``k`` of lowest DC (worst first); ties by ID."""
    ranked = sorted(rows, key=lambda row: (row["DC"], row["id"]))
    return ranked[::-1][:k], ranked[:k]


def draw_gallery(rows: Sequence[Mapping[str, Any]], files: Mapping[str, tuple[Path, Path, Path]], out: Path,
                 title: str, k: int = 4) -> Path:
    """The ``k`` best and ``k`` worst images by DC, each with prediction (green) and truth (blue) outlined.

    Args:
        rows: per-image metrics with ``id``, ``DC`` and ``JI``.
        files: (image, ground truth, prediction) paths by ID.
        out: the PNG to write.
        title: the figure's title.
        k: images per row.
    """
    best, worst = best_and_worst([row for row in rows if row["id"] in files], k)
    k = max(1, len(best))
    figure = Figure(figsize=(3 * k, 6.8), layout="constrained")
    axes = figure.subplots(2, k, squeeze=False)
    for row_axes, picks, name in ((axes[0], best, "best"), (axes[1], worst, "worst")):
        for ax, row in zip(row_axes, picks, strict=True):
            image_path, truth_path, pred_path = files[row["id"]]
            image, truth, pred = _shrunk(read_image(image_path), read_mask(truth_path), read_mask(pred_path))
            ax.imshow(overlay(image, pred, truth=truth))
            ax.set_title(f"{name}: {row['id']}\nDC {row['DC']:.3f}, JI {row['JI']:.3f}", fontsize=9)
        for ax in row_axes:
            ax.axis("off")
    figure.suptitle(f"{title}\ngreen: prediction, blue: ground truth")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out


def _oof_files(run_dir: Path, summary: dict[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[
        str, tuple[Path, Path, Path]]:
    pairs = {pair.id: pair for pair in find_pairs(runs.resolve_from_run(summary["data"], run_dir)).pairs}
    files = {}
    for row in rows:
        pred = runs.fold_paths(run_dir, int(row["fold"])).val_predictions / mask_file_name(row["id"])
        if row["id"] in pairs and pred.is_file():
            files[row["id"]] = (pairs[row["id"]].image, pairs[row["id"]].mask, pred)
    return files


def write_report(run_dir: str | Path, test_dir: str | Path | None = None, out_dir: str | Path | None = None,
                 device: str = "auto", gallery_size: int = 4) -> Report:
    """Write Fig. 2, Table I and the galleries of a cross-validation run (see the module docstring).

    Args:
        run_dir: the run folder that ``skinnet cv`` wrote.
        test_dir: a labelled test folder to predict with the fold ensemble and add to Table I.
        out_dir: where to write (default ``run_dir/report``).
        device: torch device for predicting the test folder.
        gallery_size: images in each row (best, worst) of a gallery.

    Raises:
        RunError: the run has no ``cv_summary.json`` or no finished fold.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    summary = runs.read_cv_summary(run_dir)
    if not summary["folds_done"]:
        raise RunError(f"{run_dir}: no finished fold to report on")
    report = Report()
    logs = fold_logs(run_dir, summary["folds_done"])
    report.files += plot_curves(average_curves(logs), out_dir / "fig2_curves", len(logs))

    holdout = evaluate_holdout(run_dir, test_dir, device=device) if test_dir else None
    rows = table_rows(run_dir, summary, holdout)
    report.table_markdown = table_markdown(rows)
    for name, text in (("table1.md", report.table_markdown), ("table1.html", table_html(rows))):
        write_text(out_dir / name, text)
        report.files.append(out_dir / name)

    oof_rows = read_metrics_csv(runs.cv_metrics_path(run_dir))
    try:
        files = _oof_files(run_dir, summary, oof_rows) if summary.get("data") else {}
    except LayoutError as err:  # the training data moved since the run: the table and curves still stand
        files, report.notes = {}, [f"out-of-fold gallery skipped: {err}"]
    if files:
        report.files.append(draw_gallery(oof_rows, files, out_dir / "gallery_oof.png",
                                         "Out-of-fold predictions: best and worst by DC", gallery_size))
    elif not report.notes:
        report.notes.append("out-of-fold gallery skipped: the summary names no readable training data")
    if holdout is not None and holdout.evaluation.rows:
        truths = {pair.id: pair for pair in find_pairs(holdout.test_dir, subset=TEST_SUBSET).pairs}
        test_files = {key: (pair.image, pair.mask, holdout.pred_dir / mask_file_name(key))
                      for key, pair in truths.items() if (holdout.pred_dir / mask_file_name(key)).is_file()}
        report.files.append(draw_gallery(holdout.evaluation.rows, test_files, out_dir / "gallery_test.png",
                                         f"Test folder {holdout.test_dir.name}, {holdout.n_models}-fold ensemble: "
                                         "best and worst by DC", gallery_size))
    return report
