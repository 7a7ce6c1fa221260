"""The built-in default job (`skinnet demo`) with a model file, and the training demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skinnet", "demo", *args], capture_output=True, text=True,
                          timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


def test_demo_segments_and_scores_every_sample_pair(tiny_model: Path, tmp_path: Path, sample_data: Path) -> None:
    result = run("--out", str(tmp_path), "--model", str(tiny_model))
    assert result.returncode == 0, result.stderr[-2000:]
    masks = sorted((tmp_path / "predictions").glob("*_segmentation.png"))
    assert len(masks) == 40 and len(list((tmp_path / "overlays").glob("*_overlay.png"))) == 40
    assert Image.open(masks[0]).size == (256, 256)
    assert "n = 40 images" in result.stdout and "DC" in result.stdout and "training set" in result.stdout


def test_training_demo_holds_out_ten_pairs(tmp_path: Path) -> None:
    result = run("--out", str(tmp_path), "--train", "--epochs", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "n = 10 images" in result.stdout and "Held-out images" in result.stdout
    assert len(list((tmp_path / "overlays").glob("*.png"))) == 10
