"""benchmarks/paired_oof.py: pairs per-image tables by ID across folds; the p-value is scipy's Wilcoxon."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from script_loader import load_script

from skinnet.data.tables import write_csv
from skinnet.metrics import METRIC_NAMES


def table(path: Path, dice: dict[str, float]) -> None:
    write_csv(path, [{"id": key, **dict.fromkeys(METRIC_NAMES, 0.5), "DC": value, "JI": value / (2 - value)}
                     for key, value in dice.items()], ["id", *METRIC_NAMES])


def test_pairs_by_id_over_folds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    ids = [f"ISIC_{k:07d}" for k in range(40)]
    b = dict(zip(ids, rng.uniform(0.6, 0.9, len(ids)), strict=True))
    a = {key: value + rng.normal(0.01, 0.02) for key, value in b.items()}
    for fold in range(2):  # side a in two fold tables, side b in one table with 5 extra images
        table(tmp_path / f"a{fold}.csv", {key: a[key] for key in ids[fold::2]})
    table(tmp_path / "b.csv", b | {f"X{k}": 0.1 for k in range(5)})
    script = load_script("benchmarks/paired_oof.py")
    assert script.main(["--a", str(tmp_path / "a*.csv"), "--b", str(tmp_path / "b.csv")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("40 images scored by both (40 and 45 in all)")
    row = re.search(r"^\| DC \| ([0-9.]+) \| ([0-9.]+) \| ([-+0-9.]+) \| ([0-9.e-]+) \|", out, re.MULTILINE)
    diff = np.array([a[key] - b[key] for key in ids])
    assert float(row[1]) == pytest.approx(np.mean(list(a.values())), abs=1e-4)
    assert float(row[4]) == pytest.approx(stats.wilcoxon(diff).pvalue, rel=1e-2)


def test_an_id_twice_on_one_side_is_refused(tmp_path: Path) -> None:
    table(tmp_path / "a1.csv", {"x": 0.5})
    table(tmp_path / "a2.csv", {"x": 0.6})
    with pytest.raises(SystemExit, match="twice"):
        load_script("benchmarks/paired_oof.py").main(["--a", str(tmp_path / "a*.csv"),
                                                      "--b", str(tmp_path / "a1.csv")])
