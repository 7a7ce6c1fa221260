"""Shared fixtures: the bundled sample pairs and, where present, the full ISIC 2017 training folder."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# The property tests' examples are cheap, but on a busy 2-core machine Hypothesis can take generation for
# slowness and fail a test that found nothing wrong: the health check is about speed, not correctness.
settings.register_profile("skinnet", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("skinnet")

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "skinnet" / "sample_data"
SHARED_TRAIN = REPO.parent / "shared" / "data" / "isic2017_train"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The 40 real ISIC 2017 pairs shipped with the package (images/ + masks/)."""
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def shared_train() -> Path:
    """The 2000 ISIC 2017 training pairs beside the repo; tests using it skip where it is absent."""
    if not (SHARED_TRAIN / "masks").is_dir():
        pytest.skip(f"ISIC 2017 training data not found at {SHARED_TRAIN} (only on the project's machines)")
    return SHARED_TRAIN


@pytest.fixture()
def cache_dir(tmp_path: Path) -> str:
    """A private resize cache, so tests never share or reuse one another's arrays."""
    return str(tmp_path / "cache")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, briefly trained SkinNet (width 4, 64 px, 2 epochs on the sample pairs): its best.safetensors."""
    from skinnet.config import load_config
    from skinnet.training.trainer import train_fold

    run = tmp_path_factory.mktemp("tiny_run")
    config = load_config(None, ["model.width=4", "data.image_size=64", "train.epochs=2", "train.lr=0.003",
                                "model.dilations=[1,2,4]", f"data.cache_dir={run / 'cache'}"])
    result = train_fold(config, SAMPLE_DATA, run, fold=0)
    return result.paths.folder / "best.safetensors"


@pytest.fixture(scope="session")
def tiny_pretrained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/pretrained.yaml shrunk (decoder width 4, 64 px, 3 epochs), trained from ImageNet on fold 0 of
    the sample pairs: the run folder (fold_0/best.safetensors, log.csv)."""
    from skinnet.config import load_config
    from skinnet.training.trainer import train_fold

    run = tmp_path_factory.mktemp("tiny_pretrained_run")
    config = load_config(REPO / "configs" / "pretrained.yaml",
                         ["model.width=4", "data.image_size=64", "train.epochs=3", "train.batch_size=4",
                          f"data.cache_dir={run / 'cache'}"])
    train_fold(config, SAMPLE_DATA, run, fold=0)
    return run


@pytest.fixture()
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mounts a real small file system (tmpfs) of a given size, for full-disk tests; skips where it cannot."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=True)


@pytest.fixture(scope="session")
def make_dicom() -> Callable[..., Path]:
    """Builds DICOM images from real pixels: ``make_dicom(path, rgb, syntax=..., spacing=...)`` (see
    tests/dicom_factory.py)."""
    from dicom_factory import build_dicom

    return build_dicom
