"""Merging per-shard tables: the whole run's table, or a clear error when shards are missing or mixed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from skinnet.batch.merge import merge_shard_tables
from skinnet.batch.shard import Shard, shard_number, shard_table
from skinnet.data.io import InputError, write_csv

IDS = [f"ISIC_{number:07d}" for number in range(30)]
COLUMNS = ["id", "image", "status", "reason", "mask"]


def write_shards(table: Path, count: int, ids: list[str] = IDS) -> None:
    for index in range(1, count + 1):
        rows = [{"id": key, "image": f"in/{key}.jpg", "status": "ok", "reason": "",
                 "mask": f"{key}_segmentation.png"}
                for key in sorted(ids, reverse=True) if shard_number(key, count) == index]
        write_csv(shard_table(table, Shard(index, count)), rows, COLUMNS)


def test_the_merged_table_has_every_row_once_sorted_by_id(tmp_path: Path) -> None:
    table = tmp_path / "predictions.csv"
    write_shards(table, 3)
    assert merge_shard_tables(table) == 30
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [row["id"] for row in rows] == IDS and list(rows[0]) == COLUMNS
    assert rows[7]["mask"] == f"{IDS[7]}_segmentation.png"


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    table = tmp_path / "predictions.csv"
    write_shards(table, 3)
    shard_table(table, Shard(2, 3)).unlink()
    with pytest.raises(InputError, match=r"1 of 3 shards have no table yet \(predictions\.shard-2-of-3\.csv\)"):
        merge_shard_tables(table)
    assert not table.exists()


def test_tables_of_two_shardings_or_rows_in_the_wrong_table_are_refused(tmp_path: Path) -> None:
    table = tmp_path / "predictions.csv"
    write_shards(table, 2)
    write_shards(table, 3)
    with pytest.raises(InputError, match="different shardings"):
        merge_shard_tables(table)
    for index in (1, 2, 3):
        shard_table(table, Shard(index, 3)).unlink()
    misplaced = next(key for key in IDS if shard_number(key, 2) == 2)
    write_shards(table, 2, [key for key in IDS if key != misplaced])
    with open(shard_table(table, Shard(1, 2)), "a") as handle:
        handle.write(f"{misplaced},x.jpg,ok,,m.png\n")
    with pytest.raises(InputError, match=f"ID '{misplaced}' belongs to shard 2 of 2"):
        merge_shard_tables(table)


def test_no_shard_tables_at_all(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no shard tables \(predictions\.shard-K-of-N\.csv\)"):
        merge_shard_tables(tmp_path / "predictions.csv")
