"""The local executor's worker threads: the bytes of one image at a time, bad files as outcomes, a progress bar."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from skinnet.batch.local import Outcome, ProgressBar, predict_batch
from skinnet.batch.run import predict_files
from skinnet.batch.store import OutputStore, WorkItem
from skinnet.batch.writers import ImageResult, OutputWriter
from skinnet.data.io import InputError
from skinnet.inference.segmenter import Segmenter


class Keep(OutputWriter):
    """Keeps each probability map in memory."""

    def __init__(self) -> None:
        self.kept: dict[str, np.ndarray] = {}

    def write(self, result: ImageResult, out_dir: Path) -> None:
        self.kept[result.id] = result.probability


def test_worker_threads_and_batches_give_the_bytes_of_one_batch_after_another(
        images: Path, tiny_model: Path, tmp_path: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu", batch_size=3, tta=True)
    runs = {}
    for workers in (1, 3):
        out = tmp_path / f"workers{workers}"
        report = predict_files(segmenter, [images], out, with_probability=True, with_overlay=True,
                               batch_size=3, workers=workers)
        assert len(report.written) == 7 and len(report.failed) == 2
        assert {Path(line.split(":")[0]).name for line in report.failed} == {"cut.jpg", "empty.jpg"}
        runs[workers] = {path.name: path.read_bytes() for path in sorted(out.glob("*.png"))}
    assert len(runs[1]) == 21 and runs[1] == runs[3]


def test_an_images_result_does_not_depend_on_its_batch_mates(images: Path, tiny_model: Path, tmp_path: Path,
                                                             one_thread: None) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu", batch_size=4)
    paths = sorted(images.glob("ISIC_*.jpg"))
    items = [WorkItem(path.stem, path) for path in paths]
    keeps = []
    for batch in ([items[0], items[1], items[2], items[3]], [items[0], items[5], items[6]], [items[0]]):
        keep = Keep()
        predict_batch(segmenter, batch, OutputStore(tmp_path, [keep], None), batch_size=4)
        keeps.append(keep.kept[items[0].id])
    assert all(np.array_equal(keeps[0], kept) for kept in keeps[1:])  # padded: always 4 per pass


def test_a_bad_file_is_an_outcome_and_its_batch_mates_are_written(images: Path, tiny_model: Path,
                                                                   tmp_path: Path) -> None:
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    good = sorted(images.glob("ISIC_*.jpg"))[0]
    items = [WorkItem("cut", images / "cut.jpg"), WorkItem(good.stem, good)]
    keep = Keep()
    outcomes = predict_batch(segmenter, items, OutputStore(tmp_path, [keep], None), batch_size=2)
    assert outcomes[1] == Outcome(good.stem) and outcomes[0].id == "cut"
    assert outcomes[0].error is not None and outcomes[0].error.startswith(f"{images / 'cut.jpg'}: corrupt")
    assert list(keep.kept) == [good.stem]
    keep = Keep()
    with pytest.raises(InputError, match=r"cut\.jpg"):
        predict_batch(segmenter, items, OutputStore(tmp_path, [keep], None), batch_size=2, strict=True)
    assert not keep.kept  # strict: nothing of the batch was written


def test_strict_stops_in_input_order_even_with_worker_threads(images: Path, tiny_model: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shutil.copytree(images, folder)
    (folder / "ISIC_0000000.jpg").write_bytes(b"")  # sorts first
    segmenter = Segmenter.from_file(tiny_model, device="cpu")
    with pytest.raises(InputError, match="empty file"):
        predict_files(segmenter, [folder], tmp_path / "out", strict=True, workers=2, resume=True)
    assert not (tmp_path / "out").exists()


def test_the_progress_bar_counts_images_and_failures() -> None:
    bar = ProgressBar(5, enabled=True)
    bar([Outcome("a"), Outcome("b", "b.jpg: empty file (0 bytes)")])
    bar([Outcome("c", "c.jpg: no such file"), Outcome("d")])
    assert (bar.bar.n, bar.failed) == (4, 2) and bar.bar.postfix == "failed=2"
    bar.close()
