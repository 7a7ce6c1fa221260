"""Faults during training and in model files: a clear message, and nothing already saved is lost."""

from __future__ import annotations

import csv
import hashlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from skinnet.config import Config, load_config
from skinnet.networks.files import ModelFileError, load_model
from skinnet.training.checkpoint import CheckpointError, load_checkpoint
from skinnet.training.trainer import TrainingError, train_fold

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
TINY = ["model.width=4", "model.dilations=[1,2]", "data.image_size=32", "train.batch_size=4", "train.n_folds=2",
        "train.threads=1"]


def tiny_config(cache_dir: str, *overrides: str) -> Config:
    return load_config(None, [*TINY, f"data.cache_dir={cache_dir}", *overrides])


def skinnet(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skinnet", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


def train_command(config: Path, data: Path, out: Path, cache: Path, epochs: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "skinnet", "train", "--config", str(config), "--data", str(data), "--out",
            str(out), *extra, *TINY, f"train.epochs={epochs}", f"data.cache_dir={cache}"]


def logged_epochs(fold_dir: Path) -> list[int]:
    path = fold_dir / "log.csv"
    return [int(row["epoch"]) for row in csv.DictReader(path.read_text().splitlines())] if path.exists() else []


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error:" in line]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (path := tmp_path / "tiny.yaml").write_text("model:\n  width: 4\n")
    return path


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, sample_data: Path, cache_dir: str) -> None:
    run = tmp_path / "run"
    train_fold(tiny_config(cache_dir, "train.epochs=2"), sample_data, run)
    fold = run / "fold_0"
    saved = {name: digest(fold / name) for name in ("last.pt", "best.pt", "best.safetensors")}
    # A standard deviation of 0 divides the images by zero: the next batch's loss is NaN. The config check
    # refuses it; set past that check, it tests the trainer's own guard.
    broken = tiny_config(cache_dir, "train.epochs=4")
    broken.data.std = [0.0, 0.0, 0.0]
    with pytest.raises(TrainingError) as info:
        train_fold(broken, sample_data, run, resume=True)
    message = str(info.value)
    assert message.startswith("loss became nan in epoch 3 train")
    assert f"the last good state, epoch 2, is in {fold / 'last.pt'}" in message
    assert "train.lr" in message and "\n" not in message
    assert {name: digest(fold / name) for name in saved} == saved  # nothing overwritten with NaN weights
    state = load_checkpoint(fold / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(tensor).all() for tensor in state["model"].values() if tensor.is_floating_point())
    model, _ = load_model(fold / "best.safetensors")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert logged_epochs(fold) == [0, 1]


def test_nan_loss_in_the_first_epoch_says_there_is_no_checkpoint(
        tmp_path: Path, sample_data: Path, cache_dir: str) -> None:
    config = tiny_config(cache_dir, "train.epochs=2")
    config.train.lr = 1.0e30  # past the config check (train.lr is at most 10): the trainer's guard is tested
    with pytest.raises(TrainingError, match=r"loss became nan in epoch 1 train; no epoch was completed"):
        train_fold(config, sample_data, tmp_path / "run")
    assert not (tmp_path / "run" / "fold_0" / "last.pt").exists()


def test_resume_with_another_network_is_a_clear_error(tmp_path: Path, sample_data: Path, cache_dir: str) -> None:
    train_fold(tiny_config(cache_dir, "train.epochs=1"), sample_data, tmp_path / "run")
    with pytest.raises(TrainingError, match="holds a different network than the config describes"):
        train_fold(tiny_config(cache_dir, "train.epochs=2", "model.width=8"), sample_data, tmp_path / "run",
                   resume=True)


def test_unwritable_output_folder_is_one_clear_line(
        tmp_path: Path, sample_data: Path, config_file: Path) -> None:
    (blocker := tmp_path / "file.txt").write_text("a file, not a folder")
    result = skinnet("train", "--config", config_file, "--data", sample_data, "--out", blocker / "out",
                     *TINY, "train.epochs=1", f"data.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert error_lines(result.stderr) == [f"skinnet train: error: {blocker / 'out' / 'fold_0'}: Not a directory"]


@pytest.fixture
def disk(mount_tmpfs: Callable[[str], Path]) -> Path:
    """A real 64 MB file system (tmpfs) for a run's outputs; skipped where mounting is not permitted."""
    return mount_tmpfs("64m")


def fill(disk: Path) -> Path:
    """Write zeros until the disk is full; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(bytes(1 << 20))
                handle.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_full_disk_mid_run_is_a_clear_error_and_resume_loses_nothing(
        disk: Path, sample_data: Path, config_file: Path, tmp_path: Path) -> None:
    run, fold = disk / "run", disk / "run" / "fold_0"
    command = train_command(config_file, sample_data, run, tmp_path / "cache", 8)
    trainer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while len(logged_epochs(fold)) < 2 and trainer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    filler = fill(disk)  # the disk fills up while the run goes on
    _, stderr = trainer.communicate(timeout=120)
    assert trainer.returncode == 2, stderr[-2000:]
    assert "Traceback" not in stderr
    [line] = error_lines(stderr)
    found = re.fullmatch(r"skinnet train: error: cannot write \S+/(log.csv|best.safetensors|best.pt|last.pt) "
                         r"\(No space left on device\) after epoch (\d+); the last good state, epoch (\d+), "
                         r"is in \S+/last.pt. Free space or fix the folder, then run again with --resume", line)
    assert found, line
    assert not [p.name for p in fold.iterdir() if p.name.endswith(".tmp")]  # no partial file is left
    completed = load_checkpoint(fold / "last.pt")["epoch"]  # counted from 0; the message counts from 1
    assert int(found[3]) == completed + 1 == int(found[2]) - 1
    filler.unlink()  # space again: the run continues where it stopped
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert logged_epochs(fold) == list(range(8))
    assert load_checkpoint(fold / "last.pt")["epoch"] == 7


class WritesMarker:
    """Unpickling this runs code: it writes the file named in its argument."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",)


@pytest.fixture
def evil_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A real SkinNet-looking checkpoint whose model entry runs code when unpickled, and its marker file."""
    marker = tmp_path / "code_ran.txt"
    state = {"config": Config().to_dict(), "model": {"weight": WritesMarker(marker)}, "epoch": 0}
    torch.save(state, path := tmp_path / "evil.pt")
    return path, marker


def test_the_malicious_checkpoint_really_runs_code_when_unpickled(evil_checkpoint: tuple[Path, Path]) -> None:
    # Guards the tests below: full unpickling of this file does write the marker.
    path, marker = evil_checkpoint
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_malicious_checkpoint_is_refused_without_running_it(evil_checkpoint: tuple[Path, Path]) -> None:
    path, marker = evil_checkpoint
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused") and "could run code" in message and "\n" not in message
    assert "(unpickling needs exec)" in message
    with pytest.raises(ModelFileError, match=str(path)):
        load_model(path)
    assert not marker.exists()


def test_cli_refuses_a_malicious_model_and_a_malicious_resume(
        evil_checkpoint: tuple[Path, Path], sample_data: Path, config_file: Path, tmp_path: Path) -> None:
    path, marker = evil_checkpoint
    result = skinnet("predict", sample_data / "images" / "ISIC_0000025.jpg", "--out", tmp_path / "out",
                     "--model", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert error_lines(result.stderr)[0].startswith(f"skinnet predict: error: {path}")
    (tmp_path / "run" / "fold_0").mkdir(parents=True)
    (tmp_path / "run" / "fold_0" / "last.pt").write_bytes(path.read_bytes())
    result = skinnet("train", "--config", config_file, "--data", sample_data, "--out", tmp_path / "run",
                     "--resume", *TINY, "train.epochs=2", f"data.cache_dir={tmp_path / 'cache'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = error_lines(result.stderr)
    assert "last.pt: refused" in line and "could run code" in line
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path, sample_data: Path, cache_dir: str) -> None:
    train_fold(tiny_config(cache_dir, "train.epochs=1"), sample_data, tmp_path / "run")
    data = (tmp_path / "run" / "fold_0" / "last.pt").read_bytes()
    (broken := tmp_path / "broken.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"broken.pt: not a readable checkpoint, truncated or corrupt"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
