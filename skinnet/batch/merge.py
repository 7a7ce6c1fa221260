"""Combine the per-shard tables of a sharded run (``X.shard-K-of-N.csv``) into the whole run's ``X.csv``.

Checked, not assumed: every shard 1..N has a table, all of one N, each row sits in the table of the shard
that owns its ID (so tables of different shardings are never mixed), and no ID appears twice. Rows are
sorted by ID, as an unsharded run writes them, so the merged table equals the one a single run writes.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from skinnet.batch.shard import Shard, shard_number, shard_table
from skinnet.data.io import InputError, write_csv


def shard_tables(path: Path) -> dict[tuple[int, int], Path]:
    """The shard tables beside ``path``, by ``(K, N)``."""
    pattern = re.compile(rf"{re.escape(path.stem)}\.shard-(\d+)-of-(\d+){re.escape(path.suffix)}")
    found = {}
    for candidate in path.parent.glob(f"{path.stem}.shard-*-of-*{path.suffix}"):
        match = pattern.fullmatch(candidate.name)
        if match:
            found[int(match.group(1)), int(match.group(2))] = candidate
    return found


def merge_shard_tables(path: str | Path) -> int:
    """Write ``path`` from its shard tables; returns the number of rows.

    Raises:
        InputError: no shard tables, tables of several N, a shard without a table, a row in the wrong
            shard's table, or an ID twice.
    """
    path = Path(path)
    found = shard_tables(path)
    if not found:
        raise InputError(path, f"no shard tables ({path.stem}.shard-K-of-N{path.suffix}) beside it to merge")
    counts = sorted({count for _, count in found})
    if len(counts) > 1:
        raise InputError(path, f"shard tables of different shardings (of {', '.join(map(str, counts))}) "
                               "beside it; delete the stale ones")
    count = counts[0]
    missing = [index for index in range(1, count + 1) if (index, count) not in found]
    if missing:
        names = ", ".join(shard_table(path, Shard(index, count)).name for index in missing)
        raise InputError(path, f"{len(missing)} of {count} shards have no table yet ({names}); run them first")
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    for index in range(1, count + 1):
        table = found[index, count]
        with open(table, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns += [name for name in reader.fieldnames or [] if name not in columns]
            for row in reader:
                key = row["id"]
                if shard_number(key, count) != index:
                    raise InputError(table, f"ID {key!r} belongs to shard {shard_number(key, count)} of {count}")
                if key in rows:
                    raise InputError(table, f"ID {key!r} appears twice")
                rows[key] = row
    write_csv(path, [rows[key] for key in sorted(rows)], columns)
    return len(rows)
