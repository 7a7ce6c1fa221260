"""The unit of work of every executor (read, segment and write one batch), the protocol executors share,
and the local executor, which runs the batches in this process.

With ``workers > 1`` the local executor gives each batch to a pool of threads, at most ``2 * workers`` batches
in flight: while one thread is inside the network (which releases the GIL), others decode JPEGs and
encode PNGs, so the stages overlap and memory stays bounded. Every forward pass gets exactly
``batch_size`` images, a short last batch being padded with tiny blank images, so an image's result does
not depend on which images share its batch: a resumed, sharded or cluster run gives the same bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from skinnet.batch.store import OutputStore, WorkItem
from skinnet.batch.writers import ImageResult
from skinnet.data.checks import one_line
from skinnet.data.io import InputError, read_image
from skinnet.inference.predictor import Predictor

PADDING = np.zeros((16, 16, 3), np.uint8)


@dataclass(frozen=True)
class Outcome:
    """What became of one image: ``error`` is ``None`` when its outputs were written, else the reason."""

    id: str
    error: str | None = None


Reader = Callable[[Path], Any]
OnDone = Callable[[list[Outcome]], None]


class Executor(Protocol):
    """What runs a batch job's work items (:func:`skinnet.batch.run.predict_files`'s ``executor``):
    :class:`LocalExecutor` in this process, :class:`skinnet.batch.dask.DaskExecutor` on a cluster."""

    def run(self, predictor: Predictor, items: Sequence[WorkItem], store: OutputStore, batch_size: int,
            strict: bool = False, reader: Reader = read_image, on_done: OnDone | None = None) -> list[Outcome]:
        """Predict ``items`` and commit their outputs to ``store``; one outcome per item.

        Raises:
            InputError: with ``strict``, the first file that cannot be read.
        """
        ...


def predict_batch(predictor: Predictor, items: Sequence[WorkItem], store: OutputStore, batch_size: int,
                  strict: bool = False, reader: Reader = read_image) -> list[Outcome]:
    """Read, segment and commit one batch; an image that cannot be read or written is an outcome, not an exception.

    Args:
        predictor: the model (a :class:`~skinnet.inference.predictor.Predictor`: a Segmenter, an Ensemble).
        items: at most ``batch_size`` images.
        store: where the outputs go.
        batch_size: images per forward pass (a short batch is padded).
        strict: raise at the first file that cannot be read.
        reader: reads a file as RGB ``uint8``, or as an object with such ``pixels`` (kept as
            :attr:`ImageResult.source`); raises :class:`InputError` for a bad file.

    Raises:
        InputError: with ``strict``, the first file that cannot be read (nothing of the batch is written) or
            whose outputs a writer refuses.
        OSError: an output cannot be written (e.g. a full disk).
    """
    outcomes: list[Outcome] = []
    good: list[tuple[WorkItem, Any]] = []
    for item in items:
        try:
            good.append((item, reader(item.path)))
        except Exception as err:  # whatever a reader raised, it is this file's outcome (see image_error)
            if strict:
                raise image_error(item.path, err) from err
            outcomes.append(Outcome(item.id, str(image_error(item.path, err))))
    if not good:
        return outcomes
    images = [source if isinstance(source, np.ndarray) else source.pixels for _, source in good]
    padding = [PADDING] * (batch_size - len(images))
    probabilities = predictor.predict_proba_batch(images + padding)
    for (item, source), image, probability in zip(good, images, probabilities, strict=False):
        result = ImageResult(item.id, item.path, image, probability, predictor.to_mask(probability),
                             source=None if source is image else source, predictor=predictor)
        try:
            store.commit(result, item.stale)
        except OSError:  # the output folder's fault (a full disk), not the image's: the run stops
            raise
        except Exception as err:  # a writer refused this image (e.g. a SEG highdicom cannot build)
            if strict:
                raise image_error(item.path, err) from err
            outcomes.append(Outcome(item.id, str(image_error(item.path, err))))
            continue
        outcomes.append(Outcome(item.id))
    return outcomes


def image_error(path: Path, err: Exception) -> InputError:
    """``err`` met reading or writing one image, as the one-line :class:`InputError` a batch reports.

    Readers raise :class:`InputError` for every problem they know; anything else is a bug or a decoder's
    surprise, and still must not abort the batch nor every resume of it.
    """
    if isinstance(err, InputError):
        return err
    return InputError(path, f"unexpected error, image skipped ({type(err).__name__}: {one_line(err, 200)})")


def run_local(predictor: Predictor, items: Sequence[WorkItem], store: OutputStore, batch_size: int = 1,
              workers: int = 1, strict: bool = False, reader: Reader = read_image,
              on_done: OnDone | None = None) -> list[Outcome]:
    """Predict ``items`` in this process: one batch after another, or ``workers`` threads at a time.

    Args:
        predictor: the model (a :class:`~skinnet.inference.predictor.Predictor`: a Segmenter, an Ensemble).
        items: the images to predict (see :meth:`OutputStore.plan`).
        store: where the outputs go.
        batch_size: images per forward pass.
        workers: threads, each taking a whole batch from file to outputs; 1 runs them one after another.
        strict: stop at the first file that cannot be read (runs one batch at a time, in order).
        reader: reads one file (see :func:`predict_batch`).
        on_done: called in this thread with the outcomes of each finished batch (e.g. a progress bar).
    """
    batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    outcomes: list[Outcome] = []

    def collect(batch: list[Outcome]) -> None:
        outcomes.extend(batch)
        if on_done is not None:
            on_done(batch)

    if workers <= 1 or strict:
        for batch in batches:
            collect(predict_batch(predictor, batch, store, batch_size, strict, reader))
        return outcomes
    pool = ThreadPoolExecutor(workers, thread_name_prefix="skinnet-predict")
    window: deque[Future[list[Outcome]]] = deque()
    try:
        for batch in batches:
            window.append(pool.submit(predict_batch, predictor, batch, store, batch_size, False, reader))
            if len(window) >= 2 * workers:
                collect(window.popleft().result())
        while window:
            collect(window.popleft().result())
    finally:  # on an error (a full disk) or Ctrl-C, start nothing new; batches in flight finish
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


@dataclass(frozen=True)
class LocalExecutor:
    """Runs a batch job in this process (see :func:`run_local`).

    Attributes:
        workers: threads, each taking a whole batch from file to outputs; 1 runs them one after another.
    """

    workers: int = 1

    def run(self, predictor: Predictor, items: Sequence[WorkItem], store: OutputStore, batch_size: int,
            strict: bool = False, reader: Reader = read_image, on_done: OnDone | None = None) -> list[Outcome]:
        return run_local(predictor, items, store, batch_size, self.workers, strict, reader, on_done)


class ProgressBar:
    """A tqdm bar of images: rate (img/s), ETA, and the count of failed files.

    Args:
        total: images to predict.
        enabled: ``None`` shows it only on a terminal.
    """

    def __init__(self, total: int, enabled: bool | None = None) -> None:
        self.failed = 0
        self.bar = tqdm(total=total, unit="img", desc="predict", dynamic_ncols=True, leave=False,
                        disable=None if enabled is None else not enabled)

    def __call__(self, outcomes: list[Outcome]) -> None:
        self.failed += sum(outcome.error is not None for outcome in outcomes)
        if self.failed:
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(len(outcomes))

    def close(self) -> None:
        self.bar.close()
