"""`kill -9` a real `skinnet train` at random moments, `--resume` each time: at most one epoch is lost."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skinnet.training.checkpoint import load_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
EPOCHS = 8
TINY = ["model.width=4", "model.dilations=[1,2]", "data.image_size=32", "train.batch_size=4", "train.n_folds=2",
        "train.threads=1", f"train.epochs={EPOCHS}"]


def log_rows(fold: Path) -> list[dict[str, str]]:
    path = fold / "log.csv"
    return list(csv.DictReader(path.read_text().splitlines())) if path.exists() else []


def logged_since(fold: Path, started: float) -> int:
    """Rows in the log if this process has written it since ``started`` (a resumed run starts from a stale one)."""
    path = fold / "log.csv"
    return len(log_rows(fold)) if path.exists() and path.stat().st_mtime > started else 0


def checkpoint_epoch(fold: Path) -> int:
    return load_checkpoint(fold / "last.pt")["epoch"] if (fold / "last.pt").exists() else -1


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_loses_at_most_one_epoch(
        tmp_path: Path, sample_data: Path) -> None:
    (config := tmp_path / "tiny.yaml").write_text("model:\n  width: 4\n")

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "skinnet", "train", "--config", str(config), "--data", str(sample_data),
                "--out", str(out), "--resume", *TINY, f"data.cache_dir={tmp_path / 'cache'}"]

    reference = subprocess.run(command(tmp_path / "reference"), capture_output=True, text=True, env=ENV,
                               timeout=300)
    assert reference.returncode == 0, reference.stderr[-2000:]

    fold = tmp_path / "killed" / "fold_0"
    rng = random.Random(2017)
    # Kill after 0 (start-up, caching, first epoch), 1, 3 and 5 logged epochs, each a random moment later:
    # inside an epoch, while writing the log or a checkpoint, or between the two.
    for logged in (0, 1, 3, 5):
        started = time.time()
        trainer = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ENV)
        deadline = time.monotonic() + 120
        while logged_since(fold, started) < logged and trainer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 2.0 if logged == 0 else 0.3))
        assert trainer.poll() is None, "the run ended before it could be killed"
        before = checkpoint_epoch(fold)
        trainer.kill()  # SIGKILL: no handler, no cleanup
        trainer.wait()
        # At most one epoch lost: the checkpoint holds every logged epoch but possibly the last one.
        rows = [int(row["epoch"]) for row in log_rows(fold)]
        assert rows == list(range(len(rows)))
        assert checkpoint_epoch(fold) in (len(rows) - 1, len(rows) - 2)
        assert checkpoint_epoch(fold) >= before

    final = subprocess.run(command(tmp_path / "killed"), capture_output=True, text=True, env=ENV, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    assert [int(row["epoch"]) for row in log_rows(fold)] == list(range(EPOCHS))  # each epoch once, no gap
    assert checkpoint_epoch(fold) == EPOCHS - 1
    assert not list(fold.glob(".*.tmp"))  # temporaries of killed writes were cleaned up
    # The kills changed nothing: the resumed run retraced the uninterrupted one exactly.
    columns = ("train_loss", "train_dc", "val_loss", "val_dc", "lr")
    killed = [[row[key] for key in columns] for row in log_rows(fold)]
    assert killed == [[row[key] for key in columns] for row in log_rows(tmp_path / "reference" / "fold_0")]
    assert (fold / "val_summary.json").read_text() == (tmp_path / "reference" / "fold_0" / "val_summary.json"
                                                       ).read_text()
