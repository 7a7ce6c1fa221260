"""The one CSV writer and reader of every table skinnet writes: UTF-8, quoted line breaks, and cells a
spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from skinnet.data.atomic import atomic_path
from skinnet.data.checks import UNOPENABLE, InputError, unopenable

# Cells a spreadsheet would run as a formula (OWASP, "CSV Injection"): =, +, - and @, and tab and carriage
# return, which some spreadsheets strip before looking. The quote is also escaped itself, so that
# :func:`read_csv` gives back exactly what was written.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.IGNORECASE)


def spreadsheet_safe(value: Any) -> Any:
    """A table cell as written: a text starting with one of :data:`FORMULA_STARTS` gets a leading ``'``
    (OWASP's neutralisation: shown, never run); numbers, and texts that are numbers (``-0.5``), stay as they
    are."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def restored(text: str) -> str:
    """A cell of a table :func:`write_csv` wrote, as it was before :func:`spreadsheet_safe`."""
    return text[1:] if text.startswith("'") else text


class _RowLines:
    """The file-like that ``csv.writer`` writes into: the writer runs with ``\r\n`` line ends, so that it
    quotes every cell holding a ``\r`` as well as a ``\n``; each row then ends in ``\n`` alone."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line[:-2] + "\n" if line.endswith("\r\n") else line)


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> None:
    """Write dict rows as CSV with a header, atomically: the one writer of every table skinnet writes.

    The file is UTF-8 whatever the locale (a file name the file system gave as undecodable bytes is written
    back as those bytes); a cell holding a line break is quoted (``\r`` too, which the ``csv`` module leaves
    bare); a cell a spreadsheet would run as a formula is neutralised (see :func:`spreadsheet_safe`).
    :func:`read_csv` reads such a table back.
    """
    lines = _RowLines()
    writer = csv.DictWriter(lines, fieldnames=list(fieldnames), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                                        newline="") as handle:
        handle.writelines(lines.lines)


def read_csv(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """The columns and the rows of a table :func:`write_csv` wrote, every cell as it was given to it.

    Raises:
        InputError: the file is missing, empty or no CSV table (no header, a NUL byte, a cell over the
            ``csv`` module's size limit).
    """
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [{key: restored(value) if isinstance(value, str) else value
                     for key, value in row.items() if key is not None} for row in reader]
    except UNOPENABLE as err:
        raise unopenable(path, err) from err
    except csv.Error as err:
        raise InputError(path, f"not a CSV table ({err})") from err
    if not columns:
        raise InputError(path, "empty file (0 bytes)" if Path(path).stat().st_size == 0 else
                               "not a CSV table (no header line)")
    return columns, rows
