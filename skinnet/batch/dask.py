"""Prediction on a Dask cluster: each worker loads the model once and writes its images' outputs itself.

Dask distributed is an optional extra (``pip install "skinnet[cluster]"``). The driver sends chunks of
work items (paths, not pixels) as tasks, at most four per worker thread at a time, so memory stays bounded
however large the archive; each task reads, segments and commits its images with the same code as a local
run (:func:`skinnet.batch.local.run_local`), into the same output folder, which every worker must
see at the same path (a shared file system). A bad file is an outcome of its task, and a worker that dies
fails only its own chunk: both are reported in the run's summary while the other tasks go on.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Sequence
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path
from typing import Any

from skinnet.batch.local import OnDone, Outcome, Reader, run_local
from skinnet.batch.store import OutputStore, WorkItem
from skinnet.config import ConfigError
from skinnet.data.io import InputError
from skinnet.extras import require
from skinnet.inference.model_spec import ModelSpec
from skinnet.inference.predictor import Predictor

TASKS_PER_THREAD = 4
_LOADED: dict[ModelSpec, Predictor] = {}
_LOAD_LOCK = threading.Lock()


def import_distributed() -> Any:
    """The ``distributed`` module.

    Raises:
        MissingExtraError: it is not installed; the message names ``pip install 'skinnet[cluster]'``.
    """
    return require("distributed", "cluster", "running on a Dask cluster")


def _worker_predictor(spec: ModelSpec) -> Predictor:
    """The model of ``spec``, loaded once per worker process (one thread per core unless ``spec`` says)."""
    with _LOAD_LOCK:
        if spec not in _LOADED:
            from distributed import get_worker

            threads = spec.threads or get_worker().state.nthreads
            _LOADED.clear()  # one model at a time per worker
            _LOADED[spec] = replace(spec, threads=threads).load()
        return _LOADED[spec]


def predict_chunk(spec: ModelSpec, items: Sequence[WorkItem], store: OutputStore, batch_size: int,
                  strict: bool, reader: Reader) -> list[Outcome]:
    """A cluster task: predict ``items`` on this worker (images a retried task already wrote are kept)."""
    predictor = _worker_predictor(spec)
    finished = {item.id for item in items if store.is_done(item)}
    todo = [item for item in items if item.id not in finished]
    outcomes = run_local(predictor, todo, store, batch_size, workers=1, strict=strict, reader=reader)
    return [Outcome(image_id) for image_id in sorted(finished)] + outcomes


def scheduler_address(text: str) -> str:
    """The scheduler address that ``--dask`` names: an address (``tcp://host:8786``, ``host:8786``) as it
    is, or the ``address`` of a scheduler file (JSON, as ``dask scheduler --scheduler-file`` writes).

    Raises:
        ConfigError: neither an address nor a readable scheduler file with an address, in one line.
    """
    if "://" in text or re.fullmatch(r"[^/\\]+:[0-9]+", text):
        return text
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"--dask {text}: no such scheduler file, and not a scheduler address "
                          "(tcp://HOST:PORT)")
    try:
        content = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--dask {text}: not a Dask scheduler file (not JSON: {err})") from err
    address = content.get("address") if isinstance(content, dict) else None
    if not isinstance(address, str) or not address:
        raise ConfigError(f"--dask {text}: not a Dask scheduler file (no \"address\" in it)")
    return address


def lost(client: Any, err: BaseException) -> ConnectionError:
    """The one-line error of a scheduler lost mid-run (the run's table lists what finished; a rerun resumes)."""
    address = getattr(getattr(client, "scheduler", None), "address", None) or "the scheduler"
    return ConnectionError(f"lost the Dask scheduler {address} mid-run ({type(err).__name__}); the run's table "
                           "lists the images that finished: run the same command again to predict the rest")


class DaskExecutor:
    """Runs a batch job on a Dask cluster (an :class:`~skinnet.batch.local.Executor`: see
    :func:`skinnet.batch.run.predict_files`'s ``executor``). Each worker loads the model of ``spec`` itself.

    Args:
        spec: the model and options each worker loads.
        scheduler: a ``distributed.Client``, a scheduler address (``tcp://host:8786``), or the path of a
            scheduler file (JSON, as ``dask scheduler --scheduler-file`` writes).
        chunk_size: images per task.
    """

    def __init__(self, spec: ModelSpec, scheduler: Any, chunk_size: int = 16) -> None:
        distributed = import_distributed()
        if not isinstance(scheduler, distributed.Client):
            scheduler_address(str(scheduler))  # a mistyped --dask fails now, not after the model is loaded
        self.spec = spec.absolute()
        self.scheduler = scheduler
        self.chunk_size = chunk_size

    def _client(self) -> tuple[Any, bool]:
        """The client, and whether this executor opened it (and so closes it).

        Raises:
            ConfigError: ``scheduler`` is no address and no readable scheduler file, or no scheduler answers.
        """
        distributed = import_distributed()
        if isinstance(self.scheduler, distributed.Client):
            return self.scheduler, False
        address = scheduler_address(str(self.scheduler))
        try:
            return distributed.Client(address), True  # waits distributed.comm.timeouts.connect (30 s)
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"--dask {self.scheduler}: no Dask scheduler answered at {address} "
                              f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from err

    def run(self, predictor: Predictor, items: Sequence[WorkItem], store: OutputStore, batch_size: int,
            strict: bool = False, reader: Reader | None = None, on_done: OnDone | None = None) -> list[Outcome]:
        """Predict ``items`` on the cluster; outcomes in the order the tasks finished.

        ``predictor`` is the driver's copy of the model and is not sent: each worker loads ``spec``.

        Raises:
            InputError: with ``strict``, the first bad file a task met (the other tasks are cancelled).
        """
        distributed = import_distributed()
        from skinnet.data.io import read_image

        store = copy.copy(store)
        store.out_dir = store.out_dir.absolute()
        items = [replace(item, path=item.path.absolute()) for item in items]
        size = max(batch_size, self.chunk_size // batch_size * batch_size)
        chunks = iter([items[start : start + size] for start in range(0, len(items), size)])
        client, opened = self._client()
        outcomes: list[Outcome] = []
        try:
            slots = TASKS_PER_THREAD * max(1, sum(client.nthreads().values()))
            running: dict[Any, list[WorkItem]] = {}
            queue = distributed.as_completed()

            def submit() -> None:
                chunk = next(chunks, None)
                if chunk is not None:
                    future = client.submit(predict_chunk, self.spec, chunk, store, batch_size, strict,
                                           reader or read_image, pure=False)
                    running[future] = chunk
                    queue.add(future)

            for _ in range(slots):
                submit()
            for future in queue:
                chunk = running.pop(future)
                try:
                    batch = future.result()
                except InputError:
                    client.cancel(list(running))
                    raise
                except (distributed.KilledWorker, distributed.comm.CommClosedError) as err:
                    if client.status != "running":  # not one worker: the scheduler itself is gone
                        raise lost(client, err) from err
                    batch = [Outcome(item.id, f"{item.path}: not predicted: its cluster task failed "
                                              f"({type(err).__name__}: {err})") for item in chunk]
                except (CancelledError, OSError) as err:  # the scheduler went away mid-run (we cancel none)
                    if isinstance(err, CancelledError) or client.status != "running":
                        raise lost(client, err) from err
                    raise  # a task's own error (a full disk on the worker): as a local run raises it
                outcomes.extend(batch)
                if on_done is not None:
                    on_done(batch)
                submit()
        finally:
            if opened:
                client.close()
        return outcomes
