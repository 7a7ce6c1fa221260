"""The process executor: worker processes for everything that is not the network, so that CPU cores scale.

Worker threads (:func:`skinnet.batch.local.run_local`) overlap decoding and writing with the network, but the
Python parts of each image (the GIL-holding steps of decoding, labelling, PNG encoding) run one at a time
however many threads there are. Here each worker is a process running the same unit of work,
:func:`skinnet.batch.local.predict_batch`: it reads its batch, gets the lesion probabilities, thresholds,
post-processes and commits each image to the :class:`~skinnet.batch.store.OutputStore` (its own journal,
as a cluster worker has). Where the network runs is the ``network`` layout:

- ``"workers"`` (the default without a GPU): each worker loads the model once, from the run's
  :class:`~skinnet.inference.model_spec.ModelSpec`, with ``cores / workers`` threads: today's worker threads,
  without the lock.
- ``"main"`` (the default when the model runs on a GPU): the one model stays in this process, on its device.
  Each worker stands in for it with a segmenter whose network part is a request to this process: the worker
  sends the prepared batch (resized, colour constancy, normalised: ``float32 (N, 3, S, S)``), this process runs
  the network (and the flip views, on the device) and sends back the probabilities at network size, which the
  worker resizes to the image's size. Only network-size arrays cross (pickled through pipes: 0.8 MB in,
  0.26 MB out per 256 px image), so no shared memory is needed; the image, and whatever the reader returned
  (a DICOM dataset), never leave the worker. With ``device_masks`` (the default with a torch model on a GPU
  and outputs that need no probability map) the probability is resized and thresholded on the device and
  only the ``uint8`` mask comes back (:meth:`~skinnet.inference.segmenter.TorchBackend.masks`).

Both give the bytes of a run in one process with the same thread count and batch size (tested): a batch
is always padded to ``batch_size`` as before, the prepared inputs and the resizing are the same functions,
and the flips done on the device are the same arithmetic as NumPy's. Outcomes come back in batch order,
at most ``2 * workers`` batches are in flight (memory bounded as with threads), a bad file is an outcome
with its one-line reason, and resume, shards and the manifest are the store's, unchanged.

Start method: ``forkserver``. Forking this process, which holds torch's OpenMP pool and maybe a CUDA
context, is unsafe (a child can deadlock on a lock another thread held, and CUDA cannot be used after a
fork). ``spawn`` is safe but imports torch again in every worker (seconds each). The fork server is a
fresh process that imports this module (and torch) once; each worker is then a cheap fork of it, with no
thread, no model and no device state inherited. Workers ignore Ctrl-C (this process stops the run: batches in
flight finish) and end when this process ends, even by ``kill -9``. What runs in a worker is
:mod:`skinnet.batch.process_worker`; this module is the main process's side.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from skinnet.batch.local import Outcome, Reader, run_local
from skinnet.batch.process_worker import RemoteModel, run_batch, start_only, start_worker
from skinnet.batch.store import OutputStore, WorkItem
from skinnet.batch.writers import DicomSegWriter, FindingsWriter, MaskWriter, OverlayWriter
from skinnet.data.io import read_image
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.model_spec import ModelSpec
from skinnet.inference.predictor import Predictor
from skinnet.inference.segmenter import TorchBackend

NETWORKS = ("auto", "workers", "main")
# Writers that use the mask but never the probability map: with only these, masks may be made on the device.
MASK_ONLY_WRITERS = (MaskWriter, OverlayWriter, DicomSegWriter)
POLL_SECONDS = 0.05
# ``skinnet predict`` runs fewer images in threads: starting the fork server and the workers' models takes
# seconds (about 2 s on an idle 2-core machine), more than processes gain on a small run.
MIN_IMAGES = 200


def _device_type(predictor: Predictor) -> str:
    first = predictor.members[0] if isinstance(predictor, Ensemble) else predictor
    return str(getattr(first, "device", "cpu")).split(":")[0]


class _Server:
    """The network in the main process: answers the workers' requests, one batch at a time."""

    def __init__(self, predictor: Predictor, requests: Any, replies: list[Any]) -> None:
        self.predictor, self.requests, self.replies = predictor, requests, replies
        self.seconds = 0.0  # time inside the network, for the benchmark
        self.stopped = False

    def serve(self, timeout: float) -> None:
        """Answer one request if one comes within ``timeout`` seconds; after :meth:`stop`, answer "stopped"."""
        try:
            slot, member, batch, shapes = self.requests.get(timeout=timeout)
        except queue.Empty:
            return
        if self.stopped:
            self.replies[slot].put(None)
            return
        started = time.perf_counter()
        segmenter = self.predictor if member is None else self.predictor.members[member]
        if shapes is None:
            reply = segmenter.network(batch)
        else:
            reply = segmenter.backend.masks(batch, shapes, segmenter.threshold, segmenter.tta,
                                           segmenter.empty_fallback)
        self.seconds += time.perf_counter() - started
        self.replies[slot].put(reply)

    def stop(self) -> None:
        self.stopped = True


class ProcessExecutor:
    """Runs a prediction in worker processes (see :func:`skinnet.batch.run.predict_files`'s ``executor``).

    Args:
        predictor: the run's model, loaded in this process (its network runs here in the ``"main"`` layout).
        spec: how to load it, for the ``"workers"`` layout (each worker loads it once).
        workers: worker processes, each taking a batch from file to outputs (``--workers``).
        network: ``"workers"``, ``"main"``, or ``"auto"``: main where the model runs on a GPU, else workers
            (main without a ``spec``).
        device_masks: resize and threshold on the device, copying back only masks (``"main"`` layout, torch
            models, outputs that need no probability map); ``None``: where the model runs on a GPU.
        min_images: runs of fewer images run in worker threads instead (starting processes costs seconds).

    Runs with the strict option, with a writer that needs the model itself (``FindingsWriter``: measurements
    and the confidence), or (in the ``"main"`` layout) with a model that is neither a segmenter nor an
    ensemble of them, run in worker threads (:func:`skinnet.batch.local.run_local`).
    """

    def __init__(self, predictor: Predictor, spec: ModelSpec | None = None, workers: int = 2,
                 network: str = "auto", device_masks: bool | None = None, min_images: int = 0) -> None:
        if network not in NETWORKS:
            raise ValueError(f"unknown network layout {network!r}; choose one of {', '.join(NETWORKS)}")
        self.predictor = predictor
        self.spec = spec
        self.workers = max(1, workers)
        on_gpu = _device_type(predictor) == "cuda"
        self.network = network if network != "auto" else ("main" if on_gpu or spec is None else "workers")
        if self.network == "workers" and spec is None:
            raise ValueError("the workers layout loads the model from a ModelSpec: pass spec")
        self.device_masks = on_gpu if device_masks is None else device_masks
        self.min_images = min_images
        self.network_seconds = 0.0  # time the last run spent in the network in this process ("main")
        self.start_seconds = 0.0  # time starting the workers took
        self._pool: ProcessPoolExecutor | None = None
        self._requests: Any = None
        self._replies: list[Any] = []
        self._slots: Any = None

    def layout(self, store: OutputStore) -> str | None:
        """Where the network runs for a run with ``store``'s writers; ``None``: in threads instead."""
        if any(isinstance(writer, FindingsWriter) for writer in store.writers):
            return None
        if self.network == "main" and RemoteModel.of(self.predictor, False) is None:
            return None
        return self.network

    def start(self) -> float:
        """Start the worker processes (and load their models) now; they then serve every :meth:`run` until
        :meth:`close`. Returns the seconds it took. Without it, each run starts and ends its own."""
        if self._pool is None:
            started = time.perf_counter()
            main = self.network == "main"
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn")
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload([__name__])
            self._requests = context.Queue() if main else None
            self._replies = [context.Queue() for _ in range(self.workers)] if main else []
            slots = context.Queue()
            for slot in range(self.workers):
                slots.put(slot)
            threads = self.spec.threads or max(1, (os.cpu_count() or 1) // self.workers) if self.spec else None
            spec = None if main else replace(self.spec.absolute(), threads=threads)
            remote = RemoteModel.of(self.predictor, False) if main else None
            ready = context.Queue()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=start_worker,
                                             initargs=(os.getpid(), spec, remote, self._requests, self._replies,
                                                       slots, ready))
            self._slots = slots
            starting = [self._pool.submit(start_only) for _ in range(self.workers)]
            count = 0
            while count < self.workers:  # every worker has loaded its model, or one failed to
                try:
                    ready.get(timeout=POLL_SECONDS)
                    count += 1
                except queue.Empty:
                    for future in starting:
                        if future.done():
                            future.result()  # a worker that could not start: BrokenProcessPool
            ready.close()
            self.start_seconds = time.perf_counter() - started
        return self.start_seconds

    def close(self) -> None:
        """End the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            for channel in [self._requests, *self._replies, self._slots]:
                if channel is not None:
                    channel.close()
            self._pool = None

    def __enter__(self) -> ProcessExecutor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, predictor: Predictor, items: Sequence[WorkItem], store: OutputStore, batch_size: int,
            strict: bool = False, reader: Reader | None = None,
            on_done: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
        """Predict ``items``; outcomes in batch order, as :func:`~skinnet.batch.local.run_local` gives them.
        The executor's own predictor runs (its workers loaded it): ``predictor`` is the run's, the same model.

        Raises:
            InputError: with ``strict``, the first bad file (runs one batch after another, as threads do).
        """
        reader = reader or read_image
        layout = self.layout(store)
        if strict or layout is None or len(items) < self.min_images:
            return run_local(self.predictor, items, store, batch_size, self.workers, strict, reader, on_done)
        own = self._pool is None  # a pool this run starts, and ends
        self.start()
        main = layout == "main"
        masks = main and self.device_masks and isinstance(getattr(self.predictor, "backend", None), TorchBackend) \
            and all(isinstance(writer, MASK_ONLY_WRITERS) for writer in store.writers)
        store = copy.copy(store)  # workers may run in another folder: absolute paths
        store.out_dir = store.out_dir.absolute()
        items = [replace(item, path=item.path.absolute()) for item in items]
        batches = deque(items[start : start + batch_size] for start in range(0, len(items), batch_size))
        server = _Server(self.predictor, self._requests, self._replies) if main else None
        window: deque[Future[list[Outcome]]] = deque()
        outcomes: list[Outcome] = []
        try:
            while batches or window:
                while batches and len(window) < 2 * self.workers:
                    batch = batches.popleft()
                    window.append(self._pool.submit(run_batch, batch, store, batch_size, reader, masks))
                while server is not None and not window[0].done():
                    server.serve(POLL_SECONDS)
                batch = window.popleft().result()
                outcomes.extend(batch)
                if on_done is not None:
                    on_done(batch)
        except BaseException:  # an error, a dead worker or Ctrl-C: start nothing new; batches in flight end
            for future in window:
                future.cancel()
            if server is not None:
                server.stop()
                while not all(future.done() for future in window):
                    server.serve(POLL_SECONDS)
            own = True  # a pool that failed is not used again
            raise
        finally:
            self.network_seconds = server.seconds if server is not None else 0.0
            if own:
                self.close()
        return outcomes
