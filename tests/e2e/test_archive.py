"""Archive runs of ``skinnet predict`` for real: killed and resumed, and sharded, against one uninterrupted run.

The archive size is ``SKINNET_ARCHIVE_TEST_IMAGES`` (default 80 small images; the 500-image check in
docs/how-to/archive_prediction.md is this test with the variable set to 500).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from skinnet.batch.store import JOURNALS

IMAGES = int(os.environ.get("SKINNET_ARCHIVE_TEST_IMAGES", "80"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "skinnet", *map(str, args)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """IMAGES small JPEGs made from the real samples (resized, flipped, turned), and one empty file."""
    folder = tmp_path_factory.mktemp("archive")
    sources = sorted((sample_data / "images").glob("*.jpg"))
    for index in range(IMAGES):
        image = Image.open(sources[index % len(sources)]).convert("RGB")
        image = image.resize((64 + 16 * (index % 5), 48 + 16 * (index % 3)))
        image = image.rotate(90 * (index // len(sources) % 4), expand=True)
        image.save(folder / f"arch_{index:04d}.jpg", quality=90)
    (folder / "arch_empty.jpg").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def options(tiny_model: Path) -> list[str]:
    return ["--model", str(tiny_model), "--device", "cpu", "--probability", "--threads", "1", "--workers", "2",
            "--batch-size", "2"]


@pytest.fixture(scope="module")
def reference(archive: Path, options: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of one uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    result = subprocess.run(command("predict", archive, "--out", out, *options), capture_output=True, text=True,
                            env=ENV, timeout=600)
    assert result.returncode == 1 and "arch_empty.jpg: empty file" in result.stderr, result.stderr[-2000:]
    return out


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file of an output folder but the journal: masks, probabilities, manifest, table."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def journal_ids(folder: Path) -> Counter[str]:
    """How often each image ID was recorded as finished, in all journals (a cut-off last line is not counted)."""
    lines = [line for path in folder.glob(f"{JOURNALS}/*/*.jsonl")
             for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    return Counter(line.split('"id": "')[1].split('"')[0] for line in lines)


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_outputs_and_never_redo_a_finished_image(
        archive: Path, options: list[str], reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rng = random.Random(14)
    finished: dict[str, tuple[int, int]] = {}  # every file of an image whose mask existed at a kill
    records: dict[str, int] = {}  # how often such an image was recorded as finished by then
    kills = 0
    for target in sorted(rng.sample(range(IMAGES // 10, IMAGES - IMAGES // 10), 3)):
        process = subprocess.Popen(command("predict", archive, "--out", out, *options), env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while process.poll() is None and sum(journal_ids(out).values()) < target and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.05))  # anywhere in the middle of reading, segmenting or writing
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait(timeout=60)
        counts = journal_ids(out)
        for mask in out.glob("*_segmentation.png"):  # written last and atomically: its image is finished
            key = mask.name.removesuffix("_segmentation.png")
            records.setdefault(key, counts[key])
            for path in out.glob(mask.name.replace("_segmentation.png", "_*.png")):
                finished.setdefault(path.name, (path.stat().st_ino, path.stat().st_mtime_ns))
    assert kills >= 2, "the runs ended before they could be killed: nothing was tested"
    assert 0 < len(finished) < 2 * IMAGES
    result = subprocess.run(command("predict", archive, "--out", out, *options), capture_output=True, text=True,
                            env=ENV, timeout=600)
    assert result.returncode == 1 and "1 file(s) failed" in result.stderr, result.stderr[-2000:]
    assert f"{len(finished) // 2} images already done" in result.stderr
    assert outputs(out) == outputs(reference)  # masks, probabilities, manifest and table, byte for byte
    for name, stamp in finished.items():  # a finished image was never written again
        assert (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns) == stamp, name
    recorded = journal_ids(out)
    assert sorted(recorded) == sorted(path.stem for path in archive.glob("arch_0*.jpg"))
    assert {key: recorded[key] for key in records} == records  # and never computed again
    assert not list(out.glob(".*.tmp"))  # the temporaries of killed writes were cleared
    redone = sum(count - 1 for count in recorded.values())
    print(f"\n{IMAGES} images, killed {kills} times: {len(records)} finished before a kill and never written "
          f"again; {redone} cut off mid-write and computed again")


@pytest.mark.slow
def test_shards_one_and_two_of_two_together_give_exactly_the_single_run_outputs(
        archive: Path, options: list[str], reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    written = []
    for shard in ("1/2", "2/2"):
        result = subprocess.run(command("predict", archive, "--out", out, "--shard", shard, *options),
                                capture_output=True, text=True, env=ENV, timeout=600)
        assert result.returncode in (0, 1), result.stderr[-2000:]
        written.append({line for line in result.stdout.splitlines() if line})
        assert f"merge-shards {out / 'predictions.csv'}" in result.stderr
    assert not written[0] & written[1] and len(written[0] | written[1]) == IMAGES  # no overlap, no gap
    assert min(map(len, written)) > IMAGES // 4
    merged = subprocess.run(command("merge-shards", out / "predictions.csv"), capture_output=True, text=True,
                            env=ENV, timeout=120)
    assert merged.returncode == 0 and f"{IMAGES + 1} rows" in merged.stdout, merged.stderr
    made = {name: data for name, data in outputs(out).items() if ".shard-" not in name}
    assert made == outputs(reference)


@pytest.mark.slow
def test_shards_at_once_with_measurements_merge_to_the_single_run_tables_and_never_mix_runs(
        archive: Path, options: list[str], tmp_path: Path) -> None:
    subset = tmp_path / "in"
    subset.mkdir()
    for path in sorted(archive.glob("arch_0*.jpg"))[:16]:
        shutil.copy(path, subset)
    single = tmp_path / "single"
    result = subprocess.run(command("predict", subset, "--out", single, "--measurements", tmp_path / "single.csv",
                                    *options), capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    out, measurements = tmp_path / "sharded", tmp_path / "m.csv"
    shards = [subprocess.Popen(command("predict", subset, "--out", out, "--shard", shard, "--measurements",
                                       measurements, *options), env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True) for shard in ("1/2", "2/2")]  # at once
    for shard in shards:
        _, err = shard.communicate(timeout=600)
        assert shard.returncode == 0, err[-2000:]
        assert f"merge-shards {out / 'predictions.csv'} {measurements}" in err
    assert not measurements.exists()  # each shard wrote its own table: none overwrote the other's
    assert {path.name for path in tmp_path.glob("m.*.csv")} == {"m.shard-1-of-2.csv", "m.shard-2-of-2.csv"}
    merged = subprocess.run(command("merge-shards", out / "predictions.csv", measurements), capture_output=True,
                            text=True, env=ENV, timeout=120)
    assert merged.returncode == 0 and merged.stdout.count(": 16 rows") == 2, merged.stderr
    assert measurements.read_bytes() == (tmp_path / "single.csv").read_bytes()
    assert (out / "predictions.csv").read_bytes() == (single / "predictions.csv").read_bytes()

    # Shard 2 again with other options: its outputs and table are another run's, and the merge says so.
    result = subprocess.run(command("predict", subset, "--out", out, "--shard", "2/2", "--tta", "on", *options),
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    merged = subprocess.run(command("merge-shards", out / "predictions.csv"), capture_output=True, text=True,
                            env=ENV, timeout=120)
    assert merged.returncode == 2 and merged.stderr.count("\n") == 1, merged.stderr
    assert "shard tables of different runs: predictions.shard-1-of-2.csv was written by run " in merged.stderr
