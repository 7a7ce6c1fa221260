"""The one CSV writer of every table: formula cells neutralised, line breaks quoted, UTF-8, read back exactly."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinnet.data.io import InputError
from skinnet.data.tables import FORMULA_STARTS, read_csv, write_csv

CELLS = st.one_of(st.text(), st.text(alphabet="=+-@\t\r\n'\",; 0123456789.eE", max_size=8))


def raw_cells(path: Path) -> list[list[str]]:
    """The cells as a spreadsheet sees them (no un-escaping)."""
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return list(csv.reader(handle))


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(CELLS, CELLS), max_size=6))
def test_any_text_is_read_back_exactly_and_no_cell_starts_a_formula(tmp_path_factory: pytest.TempPathFactory,
                                                                    rows: list[tuple[str, str]]) -> None:
    path = tmp_path_factory.mktemp("table") / "t.csv"
    write_csv(path, [{"id": first, "value": second} for first, second in rows], ["id", "value"])
    assert read_csv(path) == (["id", "value"], [{"id": first, "value": second} for first, second in rows])
    cells = [cell for row in raw_cells(path)[1:] for cell in row]
    assert len(raw_cells(path)) == len(rows) + 1  # a \r inside a cell never splits its row
    for cell in cells:
        if cell.startswith(FORMULA_STARTS) and not cell.startswith("'"):
            assert cell.strip() == cell and "_" not in cell and float(cell) is not None, cell  # a number only


def test_formulas_get_a_quote_and_numbers_stay_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = [{"id": "=HYPERLINK(\"http://evil\",\"x\")", "number": -0.25, "text": "-0.25"},
            {"id": "+cmd|' /C calc'!A0", "number": -3, "text": "-1e-05"},
            {"id": "-2+3", "number": 1.5, "text": "@SUM(A1:A2)"},
            {"id": "\tlead", "number": None, "text": "\rcr"},
            {"id": "'quoted", "number": float("nan"), "text": "-inf"}]
    write_csv(path, rows, ["id", "number", "text"])
    assert raw_cells(path)[1:] == [["'=HYPERLINK(\"http://evil\",\"x\")", "-0.25", "-0.25"],
                                   ["'+cmd|' /C calc'!A0", "-3", "-1e-05"],
                                   ["'-2+3", "1.5", "'@SUM(A1:A2)"],
                                   ["'\tlead", "", "'\rcr"],
                                   ["''quoted", "nan", "-inf"]]
    assert b'"\'\rcr"' in path.read_bytes()  # the carriage return is inside quotes


def test_tables_are_utf8_whatever_the_locale_and_undecodable_names_come_back(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    name = b"l\xe4sion-\xc3\xa4".decode("utf-8", "surrogateescape")  # Latin-1 bytes in a UTF-8 name
    write_csv(path, [{"id": "läsion", "image": name}], ["id", "image"])
    assert path.read_bytes() == b"id,image\nl\xc3\xa4sion,l\xe4sion-\xc3\xa4\n"
    assert read_csv(path)[1] == [{"id": "läsion", "image": name}]


@pytest.mark.parametrize(("content", "reason"), [(b"", "empty file (0 bytes)"),
                                                 (b"\n\n", "not a CSV table (no header line)"),
                                                 (b'id\n"' + b"x" * 200_000,
                                                  "not a CSV table (field larger than field limit (131072))")])
def test_what_is_no_table_is_one_line(tmp_path: Path, content: bytes, reason: str) -> None:
    (path := tmp_path / "t.csv").write_bytes(content)
    with pytest.raises(InputError, match=rf"t\.csv: {re.escape(reason)}"):
        read_csv(path)
