"""Merging per-shard tables: the whole run's table, or a clear error when shards are missing or mixed."""

from __future__ import annotations

import csv
import random
import re
import time
from pathlib import Path

import pytest

from skinnet.batch.merge import merge_shard_tables
from skinnet.batch.shard import Shard, shard_number, shard_table
from skinnet.cli import main
from skinnet.data.atomic import write_json
from skinnet.data.io import InputError
from skinnet.data.tables import read_csv, write_csv

IDS = [f"ISIC_{number:07d}" for number in range(30)]
COLUMNS = ["id", "image", "status", "reason", "mask"]


def write_shards(table: Path, count: int, ids: list[str] = IDS, key: str = "0123456789abcdef") -> None:
    for index in range(1, count + 1):
        rows = [{"id": image_id, "image": f"in/{image_id}.jpg", "status": "ok", "reason": "",
                 "mask": f"{image_id}_segmentation.png", "run_key": key}
                for image_id in sorted(ids, reverse=True) if shard_number(image_id, count) == index]
        write_csv(shard_table(table, Shard(index, count)), rows, [*COLUMNS, "run_key"])


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
        handle.write(f"{misplaced},x.jpg,ok,,m.png,0123456789abcdef\n")
    with pytest.raises(InputError, match=f"ID '{misplaced}' belongs to shard 2 of 2"):
        merge_shard_tables(table)


def test_no_shard_tables_at_all(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no shard tables \(predictions\.shard-K-of-N\.csv\)"):
        merge_shard_tables(tmp_path / "predictions.csv")


def test_shards_of_different_runs_are_refused_in_one_line(tmp_path: Path) -> None:
    """Shards 1-2 with --tta off, shard 2 re-run with TTA on: the tables name two run keys."""
    table = tmp_path / "predictions.csv"
    write_shards(table, 2, key="aaaaaaaaaaaaaaaa")
    rerun = [image_id for image_id in IDS if shard_number(image_id, 2) == 2]
    write_csv(shard_table(table, Shard(2, 2)), [{"id": image_id, "run_key": "bbbbbbbbbbbbbbbb"}
                                                for image_id in rerun], ["id", "run_key"])
    with pytest.raises(InputError, match=r"shard tables of different runs: predictions\.shard-1-of-2\.csv was "
                                         r"written by run a{16}, predictions\.shard-2-of-2\.csv by run b{16}"):
        merge_shard_tables(table)
    assert not table.exists()
    write_shards(table, 2, key="bbbbbbbbbbbbbbbb")  # one run, but the folder's outputs are another's now
    write_json(tmp_path / "manifest.json", {"key": "cccccccccccccccc"})
    with pytest.raises(InputError, match=r"written by run b{16}, but the folder's manifest\.json says its "
                                         r"outputs are now run c{16}'s"):
        merge_shard_tables(table)
    write_json(tmp_path / "manifest.json", {"key": "bbbbbbbbbbbbbbbb"})
    assert merge_shard_tables(table) == 30
    assert "run_key" not in table.read_text().splitlines()[0]  # the merged table is a single run's


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "empty file (0 bytes)"),
    (b"image,status,run_key\nx.jpg,ok,k\n", "not a shard table of a skinnet run (no 'id' column)"),
    (b"id,image,status\nx,x.jpg,ok\n", "not a shard table of a skinnet run (no 'run_key' column)"),
    (bytes(random.Random(5).randrange(256) for _ in range(4000)), "not a"),
])
def test_a_table_that_is_no_shard_table_is_one_line(tmp_path: Path, content: bytes, reason: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "predictions.csv"
    write_shards(table, 2)
    shard_table(table, Shard(2, 2)).write_bytes(content)
    assert main(["merge-shards", str(table)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"skinnet merge-shards: error: {shard_table(table, Shard(2, 2))}: {reason}"), err
    assert err.count("\n") == 1 and not table.exists()


def test_shard_numbers_out_of_bounds_are_refused_at_once(tmp_path: Path) -> None:
    table = tmp_path / "predictions.csv"
    for name in ("predictions.shard-1-of-1000000000.csv", "predictions.shard-1-of-" + "9" * 26 + ".csv",
                 "predictions.shard-0-of-2.csv", "predictions.shard-3-of-2.csv"):
        (tmp_path / name).write_text("id,run_key\n")
        started = time.perf_counter()
        with pytest.raises(InputError, match=f"{re.escape(name)}: not a table of a shard: shard .*must be "
                                             "between 1 and"):
            merge_shard_tables(table)
        assert time.perf_counter() - started < 1
        (tmp_path / name).unlink()
    (tmp_path / "predictions.shard-7-of-100000.csv").write_text("id,run_key\n")  # the largest N: still quick
    with pytest.raises(InputError, match=r"99,999 of 100,000 shards have no table yet \(predictions\.shard-1-"
                                         r"of-100000\.csv, .*, predictions\.shard-3-of-100000\.csv and 99,996 "
                                         r"more\)"):
        merge_shard_tables(table)


def test_formula_cells_survive_the_merge_neutralised_and_in_their_shard(tmp_path: Path) -> None:
    table = tmp_path / "predictions.csv"
    ids = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "'quoted", "plain", "-7"]
    write_shards(table, 2, ids)
    assert merge_shard_tables(table) == len(ids)
    raw = {row[0] for row in list(csv.reader(table.read_text(encoding="utf-8").splitlines()))[1:]}
    assert raw == {"'=HYPERLINK(\"http://x\")", "'+1+1", "'-2+3", "'@SUM(A1)", "''quoted", "plain", "-7"}
    assert [row["id"] for row in read_csv(table)[1]] == sorted(ids)  # sorted by the IDs themselves
