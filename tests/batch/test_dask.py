"""The Dask executor on a real local cluster (2 worker processes on 127.0.0.1): the bytes of a local run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from skinnet.batch.dask import DaskExecutor, import_distributed
from skinnet.batch.run import predict_files
from skinnet.batch.store import JOURNALS
from skinnet.cli import main
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


@pytest.mark.parametrize(("scheduler", "message"), [
    ("foo", "--dask foo: no such scheduler file, and not a scheduler address (tcp://HOST:PORT)"),
    ("{tmp}/missing.json", "--dask {tmp}/missing.json: no such scheduler file, and not a scheduler address"),
    ("{tmp}/broken.json", "--dask {tmp}/broken.json: not a Dask scheduler file (not JSON: "),
    ("{tmp}/other.json", '--dask {tmp}/other.json: not a Dask scheduler file (no "address" in it)'),
    ("127.0.0.1:9", "--dask 127.0.0.1:9: no Dask scheduler answered at 127.0.0.1:9 (Timed out"),
])
def test_a_scheduler_that_is_not_there_is_one_line(scheduler: str, message: str, tiny_model: Path, tmp_path: Path,
                                                   sample_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import dask
    import distributed  # noqa: F401 - its config defaults registered before the override, not inside it

    (tmp_path / "broken.json").write_text('{"address": "tcp://127.0.0.1:8786"')  # cut short
    (tmp_path / "other.json").write_text('{"type": "Scheduler"}')
    image = sorted((sample_data / "images").glob("*.jpg"))[0]
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(["predict", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_model),
                     "--device", "cpu", "--dask", scheduler.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"skinnet predict: error: {message.format(tmp=tmp_path)}"), err
    assert err.count("\n") == 1 and not (tmp_path / "out" / "predictions.csv").exists()


@pytest.mark.slow
def test_a_scheduler_killed_mid_run_gives_one_line_and_the_table_of_what_finished(
        tiny_model: Path, sample_data: Path, tmp_path: Path) -> None:
    """A real scheduler and worker (``dask scheduler``, ``dask worker``), the scheduler killed with SIGKILL."""
    folder = tmp_path / "images"
    folder.mkdir()
    sources = sorted((sample_data / "images").glob("*.jpg"))
    for index in range(300):
        image = Image.open(sources[index % len(sources)]).resize((64 + 8 * (index % 4), 48))
        image.save(folder / f"k_{index:04d}.jpg")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1",
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
    dask_cli = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    file, out = tmp_path / "scheduler.json", tmp_path / "out"
    scheduler = subprocess.Popen([*dask_cli, "--scheduler-file", str(file), "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard"], env=env, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(file), "--nthreads", "1", "--nworkers", "1", "--no-dashboard"], env=env,
                                  stderr=subprocess.DEVNULL)
        predict = subprocess.Popen([sys.executable, "-m", "skinnet", "predict", str(folder), "--out", str(out),
                                    "--model", str(tiny_model), "--device", "cpu", "--dask", str(file),
                                    "--progress", "off"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while (predict.poll() is None and time.monotonic() < deadline
               and sum(len(path.read_text().splitlines()) for path in out.glob(f"{JOURNALS}/*/*.jsonl")) < 20):
            time.sleep(0.02)
        scheduler.kill()
        _, err = predict.communicate(timeout=120)
    finally:
        for process in (scheduler, worker):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    lines = err.strip().splitlines()
    assert predict.returncode == 2, err[-2000:]
    assert lines[-1].startswith("skinnet predict: error: lost the Dask scheduler tcp://127.0.0.1:") and \
        "the run's table lists the images that finished" in lines[-1]
    # distributed logs its failed reconnection itself; no exception of the run escapes as a traceback
    assert not any('File "' in line and "/skinnet/" in line for line in lines), err[-4000:]
    assert not any(line.startswith("distributed.client.FutureCancelledError") for line in lines), err[-4000:]
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 20 <= len(rows) < 300 and {row["status"] for row in rows} == {"ok"}
    assert all((out / row["mask"]).is_file() for row in rows)
