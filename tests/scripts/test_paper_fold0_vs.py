"""scripts/paper_fold0_vs.py: pairing the GPU job's per-image table with another fold-0 table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_loader import load_script

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "paper_fold0"


def test_pairing_with_unets_own_table_reproduces_the_jobs_wilcoxon(capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script("scripts/paper_fold0_vs.py")
    assert script.main(["--paper", str(RESULTS / "per_image.csv"),
                        "--other", str(RESULTS / "unet" / "val_metrics.csv")]) == 0
    printed = capsys.readouterr().out
    job = json.loads((RESULTS / "results.json").read_text())["wilcoxon"]["skinnet-unet"]
    for metric in ("DC", "JI"):
        line = next(row for row in printed.splitlines() if row.startswith(f"{metric}:"))
        assert f"p_value {job[metric]['p_value']:.4g}" in line


def test_tables_of_different_folds_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("id,DC,JI\nISIC_9999999,0.5,0.4\n")
    script = load_script("scripts/paper_fold0_vs.py")
    assert script.main(["--paper", str(RESULTS / "per_image.csv"), "--other", str(other)]) == 2
