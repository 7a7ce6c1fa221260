"""The Dask executor on a real local cluster (2 worker processes on 127.0.0.1): the bytes of a local run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from skinnet.batch.dask import DaskExecutor, import_distributed
from skinnet.batch.run import predict_files
from skinnet.batch.store import JOURNALS
from skinnet.extras import MissingExtraError
from skinnet.inference.model_spec import ModelSpec


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """20 real images of several sizes and one file that is not an image."""
    folder = tmp_path_factory.mktemp("images")
    for index, path in enumerate(sorted((sample_data / "images").glob("*.jpg"))[:20]):
        Image.open(path).resize((96 + 8 * (index % 3), 72)).save(folder / path.name, quality=95)
    (folder / "notes.jpg").write_text("not an image")
    return folder


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.mark.slow
def test_a_cluster_run_writes_the_bytes_of_a_local_run_and_reports_bad_files(
        client: object, images: Path, tiny_model: Path, tmp_path: Path) -> None:
    spec = ModelSpec(model=str(tiny_model), device="cpu", threads=1, batch_size=2)  # as each worker runs it
    threads = torch.get_num_threads()
    try:
        segmenter = spec.load()
        local = predict_files(segmenter, [images], tmp_path / "local", with_probability=True, batch_size=2,
                              workers=2, resume=True)
    finally:
        torch.set_num_threads(threads)
    executor = DaskExecutor(spec, client, chunk_size=4)
    cluster = predict_files(segmenter, [images], tmp_path / "dask", with_probability=True, batch_size=2,
                            executor=executor, resume=True)
    assert len(cluster.written) == len(local.written) == 20
    assert cluster.failed == local.failed and len(local.failed) == 1
    assert local.failed[0].startswith(f"{images / 'notes.jpg'}: not a readable image")
    made = files(tmp_path / "dask")
    assert len(made) == 42 and made == files(tmp_path / "local")  # masks, probabilities, manifest, table
    journals = list((tmp_path / "dask" / JOURNALS).glob("*/*.jsonl"))
    assert len({path.name.split("-")[-2] for path in journals}) == 2  # written by both worker processes
    again = predict_files(segmenter, [images], tmp_path / "dask", with_probability=True, batch_size=2,
                          executor=executor, resume=True)
    assert len(again.skipped) == 20 and not again.written and len(again.failed) == 1


@pytest.mark.slow
def test_the_cli_runs_on_a_scheduler_address(client: object, images: Path, tiny_model: Path,
                                             tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    runs = {}
    for name, extra in [("local", ["--threads", "1", "--batch-size", "2"]),
                        ("dask", ["--dask", client.scheduler.address, "--batch-size", "2"])]:  # type: ignore[attr-defined]
        out = tmp_path / name
        result = subprocess.run([sys.executable, "-m", "skinnet", "predict", str(images), "--out", str(out),
                                 "--model", str(tiny_model), "--device", "cpu", *extra],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 1, result.stderr  # the bad file
        assert "1 file(s) failed" in result.stderr and "notes.jpg: not a readable image" in result.stderr
        runs[name] = files(out)
    assert len(runs["dask"]) == 22 and runs["dask"] == runs["local"]


def test_without_dask_installed_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'skinnet\[cluster\]'"):
        import_distributed()
