"""Data-parallel training with torchrun: 2 CPU processes on the gloo backend, as on a 2-GPU machine."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from skinnet.networks.files import load_model
from skinnet.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.width=4", "data.image_size=32", "train.epochs=2", "train.batch_size=4", "model.dilations=[1,2]",
        "train.threads=1"]

# Runs the real `skinnet train` entry point in each process, and afterwards saves the weights that process
# trained (captured where the trainer wraps its model in DDP), so the test can compare the replicas.
CAPTURE = textwrap.dedent("""
    import os, sys
    import torch
    import skinnet.training.distributed as distributed
    from skinnet.cli import main

    captured = {}
    wrap = distributed.DistContext.wrap

    def capturing_wrap(self, model):
        captured["model"] = model
        return wrap(self, model)

    distributed.DistContext.wrap = capturing_wrap
    code = main(sys.argv[2:])
    torch.save(captured["model"].state_dict(), os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
    sys.exit(code)
""")


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    # --standalone picks a free port, so concurrent test runs do not collide.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def train_args(sample_data: Path, run: Path) -> list[str]:
    return ["train", "--config", str(REPO / "configs" / "cpu.yaml"), "--data", str(sample_data), "--out",
            str(run), "--fold", "0", *TINY, f"data.cache_dir={run.parent / 'cache'}"]


@pytest.mark.slow
def test_torchrun_skinnet_train_writes_one_log_and_checkpoint(sample_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = torchrun("-m", "skinnet", *train_args(sample_data, run))
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("fold 0: kept epoch") == 1  # rank 0 alone reports
    fold = run / "fold_0"
    rows = list(csv.DictReader((fold / "log.csv").open()))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for row in rows:
        assert 0 < float(row["train_loss"]) < 1 and 0 < float(row["val_loss"]) < 1  # eq. 1 lies in [0, 1]
        assert math.isfinite(float(row["val_dc"]))
    # One writer: a second process logging would have left a second TensorBoard events file.
    assert len(list((fold / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert not list(fold.glob(".*.tmp"))
    model, config = load_model(fold / "best.safetensors")
    assert config.model.width == 4
    assert all("module." not in name for name in model.state_dict())  # the bare network, not the DDP wrapper
    assert len(list((fold / "val_predictions").glob("*_segmentation.png"))) == 8  # 40 pairs / 5 folds


@pytest.mark.slow
def test_replicas_stay_identical_and_rank0_saves_them(sample_data: Path, tmp_path: Path) -> None:
    script = tmp_path / "capture.py"
    script.write_text(CAPTURE)
    run = tmp_path / "run"
    result = torchrun(str(script), str(tmp_path), *train_args(sample_data, run))
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    saved = load_checkpoint(run / "fold_0" / "last.pt")["model"]
    buffers = ("running_mean", "running_var", "num_batches_tracked")  # rank 0's are copied at each forward
    parameters = [name for name in rank0 if not name.endswith(buffers)]
    assert parameters
    for name in parameters:
        # Each rank trained on its own half of the images: only averaged gradients keep them equal.
        assert torch.equal(rank0[name], rank1[name]), name
        assert torch.equal(rank0[name], saved[name]), name
