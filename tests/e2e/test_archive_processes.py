"""``skinnet predict --executor processes`` (issue 25), for real: killed with SIGKILL and resumed, and
sharded, against one uninterrupted run in worker threads: the same bytes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from skinnet.batch.merge import merge_shard_tables
from skinnet.batch.processes import MIN_IMAGES, ProcessExecutor
from skinnet.batch.run import predict_files
from skinnet.batch.shard import Shard
from skinnet.batch.store import JOURNALS
from skinnet.inference.model_spec import ModelSpec

IMAGES = MIN_IMAGES + 80  # enough for predict to choose processes, for every run killed below and the resume
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "skinnet", *map(str, args)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """IMAGES small JPEGs made from the real samples, an empty file and a truncated JPEG."""
    folder = tmp_path_factory.mktemp("archive")
    sources = sorted((sample_data / "images").glob("*.jpg"))
    for index in range(IMAGES):
        image = Image.open(sources[index % len(sources)]).convert("RGB")
        image.resize((48 + 16 * (index % 4), 40 + 8 * (index % 3))).save(folder / f"p_{index:04d}.jpg", quality=90)
    (folder / "p_empty.jpg").write_bytes(b"")
    data = sources[0].read_bytes()
    (folder / "p_cut.jpg").write_bytes(data[: len(data) // 3])
    return folder


@pytest.fixture(scope="module")
def options(tiny_model: Path) -> list[str]:
    return ["--model", str(tiny_model), "--device", "cpu", "--probability", "--threads", "1", "--workers", "2",
            "--batch-size", "2", "--progress", "off", "--executor", "processes"]


@pytest.fixture(scope="module")
def reference(archive: Path, options: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of one uninterrupted run in worker threads."""
    out = tmp_path_factory.mktemp("reference")
    done = subprocess.run(command("predict", archive, "--out", out, *options[:-1], "threads"),
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 1 and "2 file(s) failed" in done.stderr, done.stderr[-2000:]
    return out


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder but the journal: masks, probabilities, manifest, table."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def finished(folder: Path) -> int:
    """Images recorded as finished, in all journals."""
    return sum(line.endswith("\n") for path in folder.glob(f"{JOURNALS}/*/*.jsonl")
               for line in path.read_text().splitlines(keepends=True))


def living_in_group(group: int) -> list[int]:
    """Processes of a process group that are neither gone nor zombies."""
    living = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # ended while we looked
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            living.append(int(stat.parent.name))
    return living


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_bytes_of_one_run_in_threads(
        archive: Path, options: list[str], reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rng = random.Random(25)
    kills, stamps, mains = 0, {}, set()
    for target in [rng.randrange(8, 48)]:  # at least MIN_IMAGES are left for the resumed run
        process = subprocess.Popen(command("predict", archive, "--out", out, *options), env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        mains.add(str(process.pid))
        deadline = time.monotonic() + 300
        while process.poll() is None and finished(out) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)  # the main process only, as a crash would
            kills += 1
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while living_in_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not living_in_group(process.pid), "worker processes outlived the killed run"
        for mask in out.glob("*_segmentation.png"):  # written last: its image is finished
            stamps.setdefault(mask.name, (mask.stat().st_ino, mask.stat().st_mtime_ns))
    assert kills == 1, "the run ended before it could be killed: nothing was tested"
    # resumed with predict's default executor (auto), which is processes on a CPU too
    final = subprocess.Popen(command("predict", archive, "--out", out, *options[:-2]), env=ENV, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = final.communicate(timeout=600)
    mains.add(str(final.pid))
    pids = {path.name.split("-")[-2] for path in out.glob(f"{JOURNALS}/*/*.jsonl")}
    assert len(pids) >= 2 and not pids & mains  # worker processes wrote every output, not the main's threads
    assert final.returncode == 1 and "2 file(s) failed" in stderr, stderr[-2000:]
    assert "p_empty.jpg: empty file (0 bytes)" in stderr and "p_cut.jpg: corrupt or truncated" in stderr
    assert f"{len(stamps)} images already done" in stderr
    assert outputs(out) == outputs(reference)  # masks, probabilities, manifest and table, byte for byte
    for name, stamp in stamps.items():  # a finished image was never written again
        assert (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns) == stamp, name
    assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
def test_shards_in_worker_processes_merge_to_the_single_run(archive: Path, tiny_model: Path, reference: Path,
                                                            tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), device="cpu", threads=1, batch_size=2)
    segmenter = spec.load()
    out = tmp_path / "sharded"
    with ProcessExecutor(segmenter, spec, workers=2) as executor:  # one pool for both shards
        for index in (1, 2):
            report = predict_files(segmenter, [archive], out, with_probability=True, resume=True,
                                   shard=Shard(index, 2), batch_size=2, executor=executor)
            assert report.table is not None and report.table.name == f"predictions.shard-{index}-of-2.csv"
    assert merge_shard_tables(out / "predictions.csv") == IMAGES + 2
    assert {name: data for name, data in outputs(out).items() if ".shard-" not in name} == outputs(reference)
