"""Outputs are written to a temporary file and renamed: a failure or a kill never leaves a partial file."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinnet.data.atomic import atomic_path, remove_stale_temporaries, write_bytes, write_mask, write_text
from skinnet.data.io import read_mask

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_success_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.txt"  # missing folders are created
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.txt"]


def test_failure_inside_the_block_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.csv"
    write_text(target, "complete old content")
    with pytest.raises(ZeroDivisionError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        _ = 1 / 0
    assert target.read_text() == "complete old content"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    write_mask(target := tmp_path / "mask.png", np.eye(8, dtype=bool))
    (plain := tmp_path / "plain.txt").write_text("made with open()")
    # As any file a tool writes (0644 under the usual umask), not the 0600 of a bare temporary file.
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o666 & ~umask


def test_mask_round_trip_is_single_channel_0_255(tmp_path: Path) -> None:
    mask = np.random.default_rng(0).random((37, 53)) > 0.5
    write_mask(target := tmp_path / "m_segmentation.png", mask)
    with Image.open(target) as image:
        assert image.mode == "L" and set(np.unique(np.asarray(image)).tolist()) == {0, 255}
    assert np.array_equal(read_mask(target), mask)


def test_unwritable_folder_error_names_the_path(tmp_path: Path) -> None:
    (blocker := tmp_path / "file.txt").write_text("a file where a folder is expected")
    with pytest.raises(OSError) as info:
        write_text(blocker / "out" / "report.txt", "x")
    assert info.value.errno == errno.ENOTDIR
    assert str(blocker) in str(info.value.filename)


def test_stale_temporaries_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    (stale := tmp_path / ".last.pt.abc123.tmp").write_bytes(b"partial")
    (kept := tmp_path / "last.pt").write_bytes(b"complete")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and kept.read_bytes() == b"complete"


@pytest.fixture
def small_disk(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A real 256 kB file system (tmpfs); skipped where mounting is not permitted."""
    return mount_tmpfs("256k")


def test_full_disk_raises_enospc_naming_the_target_and_keeps_the_old_file(small_disk: Path) -> None:
    target = small_disk / "last.pt"
    write_bytes(target, b"o" * 50_000)
    with pytest.raises(OSError) as info:
        write_bytes(target, b"n" * 400_000)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(target)  # the user's file, not the hidden temporary
    assert target.read_bytes() == b"o" * 50_000
    assert [p.name for p in small_disk.iterdir()] == ["last.pt"]  # the temporary is gone, space is back


WRITER = """
import sys
from skinnet.data.atomic import write_bytes
target, size = sys.argv[1], int(sys.argv[2])
write_bytes(target, b"A" * size)
print("ready", flush=True)
for i in range(1, 10**9):
    write_bytes(target, (b"B" if i % 2 else b"A") * size)
"""


@pytest.mark.slow
def test_kill_9_while_writing_leaves_the_old_or_the_new_file_never_a_mix(tmp_path: Path) -> None:
    target, size = tmp_path / "big.bin", 4_000_000
    rng = random.Random(6)
    for _ in range(3):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(size)], stdout=subprocess.PIPE,
                                  env=ENV, text=True)
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))  # the writer is somewhere inside a write, a rename or between
        writer.kill()
        writer.wait()
        data = target.read_bytes()
        assert len(data) == size and data in (b"A" * size, b"B" * size)


def test_the_content_then_the_rename_are_synced_to_the_disk(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A power loss must not leave a 0-byte file under the name: fsync the file, rename, fsync the folder."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        events.append(("fsync", "folder" if os.path.isdir(path) else Path(path).name.split(".")[1]))
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        events.append(("rename", Path(target).name))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_text(tmp_path / "report.txt", "complete")
    assert events == [("fsync", "report"), ("rename", "report.txt"), ("fsync", "folder")]
    assert (tmp_path / "report.txt").read_text() == "complete"
