"""Fixtures of the executors' tests: a folder of real images with bad files, and torch on one thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """Seven real images of several sizes, a truncated JPEG and an empty file."""
    folder = tmp_path_factory.mktemp("images")
    for index, path in enumerate(sorted((sample_data / "images").glob("*.jpg"))[:7]):
        Image.open(path).resize((80 + 16 * index, 64 + 8 * index)).save(folder / path.name, quality=95)
    data = (sample_data / "images" / "ISIC_0000025.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    return folder


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread, as each process worker's network runs, where a pass's batch size changes its results
    in the last bits (without padding); the count is restored after the test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
