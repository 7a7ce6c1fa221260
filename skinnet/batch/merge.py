"""Combine the per-shard tables of a sharded run (``X.shard-K-of-N.csv``) into the whole run's ``X.csv``.

Checked, not assumed: every shard 1..N has a table, all of one N, each row sits in the table of the shard
that owns its ID (so tables of different shardings are never mixed), no ID appears twice, and every row
was written by one run: the run key of each shard table's rows (its ``run_key`` column) is the same in all
tables, and the key of the folder's ``manifest.json`` where the table lies beside one. Rows are sorted by
ID, as an unsharded run writes them, and the ``run_key`` column is left out, so the merged table equals the
one a single run writes.
"""

from __future__ import annotations

import re
from pathlib import Path

from skinnet.batch.manifest import MANIFEST, read_manifest
from skinnet.batch.shard import Shard, shard_number, shard_table
from skinnet.config import ConfigError
from skinnet.data.io import InputError
from skinnet.data.tables import read_csv, write_csv

RUN_KEY = "run_key"
NAMED = 3  # missing shards named in the message


def shard_tables(path: Path) -> dict[tuple[int, int], Path]:
    """The shard tables beside ``path``, by ``(K, N)``.

    Raises:
        InputError: a table whose K or N is out of bounds (``shard-0-of-4``, ``shard-1-of-1000000000``).
    """
    pattern = re.compile(rf"{re.escape(path.stem)}\.shard-([0-9]+)-of-([0-9]+){re.escape(path.suffix)}")
    found = {}
    for candidate in path.parent.glob(f"{path.stem}.shard-*-of-*{path.suffix}"):
        match = pattern.fullmatch(candidate.name)
        if match:
            try:
                shard = Shard.parse(f"{match.group(1)}/{match.group(2)}")
            except ConfigError as err:
                raise InputError(candidate, f"not a table of a shard: {str(err).removeprefix('--')}") from err
            found[shard.index, shard.count] = candidate
    return found


def merge_shard_tables(path: str | Path) -> int:
    """Write ``path`` from its shard tables; returns the number of rows.

    Raises:
        InputError: no shard tables, tables of several N, a shard without a table, a table that is empty or
            not a shard table (no ``id`` or ``run_key`` column), tables of different runs, a row in the wrong
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
        names = ", ".join(shard_table(path, Shard(index, count)).name for index in missing[:NAMED])
        more = f" and {len(missing) - NAMED:,} more" if len(missing) > NAMED else ""
        raise InputError(path, f"{len(missing):,} of {count:,} shards have no table yet ({names}{more}); "
                               "run them first")
    manifest = read_manifest(path.parent) if (path.parent / MANIFEST).is_file() else None
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    keys: dict[str, Path] = {}
    for index in range(1, count + 1):
        table = found[index, count]
        names, table_rows = read_csv(table)
        for needed in ("id", RUN_KEY):
            if needed not in names:
                raise InputError(table, f"not a shard table of a skinnet run (no {needed!r} column)")
        columns += [name for name in names if name not in columns and name != RUN_KEY]
        for row in table_rows:
            key = row["id"]
            if key is None or row.get(RUN_KEY) is None:
                raise InputError(table, f"a row of fewer cells than the header ({', '.join(names)})")
            if shard_number(key, count) != index:
                raise InputError(table, f"ID {key!r} belongs to shard {shard_number(key, count)} of {count}")
            if key in rows:
                raise InputError(table, f"ID {key!r} appears twice")
            run = row.pop(RUN_KEY)
            keys.setdefault(run, table)
            rows[key] = row
        if len(keys) > 1:
            (first, one), (second, other) = list(keys.items())[:2]
            raise InputError(path, f"shard tables of different runs: {one.name} was written by run {first}, "
                                   f"{other.name} by run {second} (another model or options); rerun the "
                                   "shards of the other run with the run's model and options")
    if manifest is not None and keys and (run := next(iter(keys))) != manifest.get("key"):
        raise InputError(path, f"the shard tables were written by run {run}, but the folder's {MANIFEST} says "
                               f"its outputs are now run {manifest.get('key')}'s; rerun every shard with one "
                               "model and options")
    write_csv(path, [rows[key] for key in sorted(rows)], columns)
    return len(rows)
