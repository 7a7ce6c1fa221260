"""scripts/cv_per_gpu.sh for real: two workers on one (here absent, so CPU) GPU index, then pooling and report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["model.width=4", "data.image_size=32", "model.dilations=[1]", "train.threads=1", "train.epochs=2",
        "train.n_folds=2"]


@pytest.mark.slow
def test_two_workers_on_one_gpu_index_train_every_fold_then_pool_and_report(sample_data: Path,
                                                                             tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "GPUS": "0 0", "SKINNET": f"{sys.executable} -m skinnet", "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "cv_per_gpu.sh"), str(REPO / "configs" / "cpu.yaml"), str(sample_data),
         str(run), *TINY, f"data.cache_dir={tmp_path / 'cache'}"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # one log per worker although both share GPU index 0, and each worker trained its own fold
    logs = {path.name: path.read_text() for path in (run / "logs").iterdir()}
    assert sorted(logs) == ["worker0_gpu0.log", "worker1_gpu0.log"]
    assert "GPU 0: folds 0" in result.stdout and "GPU 0: folds 1" in result.stdout
    summary = json.loads((run / "cv_summary.json").read_text())
    assert summary["complete"] and summary["folds_done"] == [0, 1] and summary["pooled"]["n"] == 40
    assert (run / "report" / "fig2_curves.png").stat().st_size > 0 and (run / "report" / "table1.md").exists()


def test_usage_is_printed_without_arguments() -> None:
    result = subprocess.run(["bash", str(REPO / "scripts" / "cv_per_gpu.sh")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "GPUS=" in result.stdout and "set -euo" not in result.stdout
