"""Fig. 2 curves, Table I and the galleries of a cross-validation run (a synthetic run: no training needed)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinnet.cli import main
from skinnet.evaluation.published import PUBLISHED_ROWS, TABLE_METRICS
from skinnet.evaluation.report import average_curves, best_and_worst, fold_logs, write_report
from skinnet.runs import RunError


def test_curves_are_the_mean_and_sd_over_fold_logs(synthetic_run: Path) -> None:
    curves = average_curves(fold_logs(synthetic_run, [0, 1, 2]))
    logs = pd.concat([pd.read_csv(synthetic_run / f"fold_{k}" / "log.csv").assign(fold=k) for k in (0, 1, 2)])
    by_epoch = logs.groupby("epoch")
    for column in ("train_loss", "val_loss", "train_dc", "val_dc", "train_ji", "val_ji"):
        np.testing.assert_array_equal(curves[column].epochs, by_epoch[column].mean().index)
        np.testing.assert_allclose(curves[column].mean, by_epoch[column].mean(), rtol=1e-12)
        np.testing.assert_allclose(curves[column].sd, by_epoch[column].std(), rtol=1e-12)  # ddof=1
        assert list(curves[column].count) == [3, 3, 3, 3, 2, 2]


def test_report_writes_figure_table_and_gallery(synthetic_run: Path) -> None:
    report = write_report(synthetic_run)
    out = synthetic_run / "report"
    png = Image.open(out / "fig2_curves.png")
    assert png.width > 2 * png.height  # three panels side by side
    assert ET.parse(out / "fig2_curves.svg").getroot().tag.endswith("svg")
    gallery = Image.open(out / "gallery_oof.png")
    assert gallery.width > gallery.height  # 4 columns (best), 2 rows
    assert not report.notes
    assert {p.name for p in report.files} == {"fig2_curves.png", "fig2_curves.svg", "table1.md", "table1.html",
                                              "gallery_oof.png"}


def test_table_has_published_rows_and_ours_with_their_data_sets(synthetic_run: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(synthetic_run)]) == 0  # the CLI prints the Markdown table and the files
    assert "| SkinNet (Vesal et al.) |" in capsys.readouterr().out
    summary = json.loads((synthetic_run / "cv_summary.json").read_text())
    for name in ("table1.md", "table1.html"):
        text = (synthetic_run / "report" / name).read_text()
        for row in PUBLISHED_ROWS:
            line = next(line for line in text.splitlines() if row.method in line)
            for metric in TABLE_METRICS:
                assert f"{getattr(row, metric):.3f}" in line, (row.method, metric)
            assert "ISIC 2017 test set" in line
        ours = next(line for line in text.splitlines() if "this run" in line)
        for metric in TABLE_METRICS:
            assert f"{summary['pooled'][metric]:.3f} ± {summary['fold_sd'][metric]:.3f}" in ours
        assert "out-of-fold" in ours and "40 images" in ours
    markdown = (synthetic_run / "report" / "table1.md").read_text()
    assert sum(line.startswith("| ") for line in markdown.splitlines()) == 2 + 1 + len(PUBLISHED_ROWS)


def test_best_and_worst_are_the_extremes_of_dc(synthetic_run: Path) -> None:
    rows = pd.read_csv(synthetic_run / "cv_metrics.csv").to_dict("records")
    best, worst = best_and_worst(rows, 4)
    dcs = sorted(row["DC"] for row in rows)
    assert [row["DC"] for row in best] == dcs[::-1][:4] and best[0]["DC"] == 1.0  # the unshifted prediction
    assert [row["DC"] for row in worst] == dcs[:4]


def test_report_needs_a_cv_summary(tmp_path: Path, synthetic_run: Path) -> None:
    shutil.copytree(synthetic_run, tmp_path / "copy", ignore=shutil.ignore_patterns("cv_summary.json", "report"))
    with pytest.raises(RunError, match="skinnet cv"):
        write_report(tmp_path / "copy")
