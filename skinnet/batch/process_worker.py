"""The worker side of the process executor (:mod:`skinnet.batch.processes`): what runs in each worker process.

A worker is set up once (:func:`start_worker`: its model, or a stand-in whose network part is a request to the
main process, and a watch that ends it with the main process), then runs :func:`run_batch` per batch: the same
unit of work as one process, :func:`skinnet.batch.local.predict_batch`.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skinnet.batch.local import Outcome, Reader, predict_batch
from skinnet.batch.store import OutputStore, WorkItem
from skinnet.config import Config
from skinnet.inference.ensemble import Ensemble
from skinnet.inference.model_spec import ModelSpec
from skinnet.inference.postprocess import apply_postprocessing
from skinnet.inference.predictor import Predictor
from skinnet.inference.segmenter import Segmenter, output_shape

_WORKER: dict[str, Any] = {}  # in a worker process: its predictor


class Stopped(RuntimeError):
    """In a worker: the run stopped (an error or Ctrl-C in the main process) before this batch's network pass."""


@dataclass(frozen=True)
class Member:
    """What a worker needs to stand in for one segmenter of the main process (no weights)."""

    config: Config
    batch_size: int
    postprocess: tuple[str, ...]
    threshold: float


@dataclass(frozen=True)
class RemoteModel:
    """The stand-in for the main process's model: one member for a segmenter, several for an ensemble."""

    members: tuple[Member, ...]
    ensemble: bool
    postprocess: tuple[str, ...]
    threshold: float
    device_masks: bool

    @classmethod
    def of(cls, predictor: Predictor, device_masks: bool) -> RemoteModel | None:
        """The stand-in of a :class:`Segmenter` or an :class:`Ensemble` of them; ``None`` for another model."""
        segmenters = predictor.members if isinstance(predictor, Ensemble) else [predictor]
        if not all(isinstance(member, Segmenter) for member in segmenters):
            return None
        members = tuple(Member(m.config, m.batch_size, tuple(m.postprocess), m.threshold) for m in segmenters)
        return cls(members, isinstance(predictor, Ensemble), tuple(predictor.postprocess), predictor.threshold,
                   device_masks and not isinstance(predictor, Ensemble))

    def attach(self, channel: Channel) -> Predictor:
        """The worker's predictor: the same thresholds and post-processing, the network behind ``channel``."""
        members = [RemoteSegmenter(member, channel, index if self.ensemble else None, self.device_masks)
                   for index, member in enumerate(self.members)]
        if not self.ensemble:
            return members[0]
        return Ensemble(members, threshold=self.threshold, postprocess=list(self.postprocess))


class Channel:
    """A worker's line to the network in the main process: one request, one reply, per batch."""

    def __init__(self, slot: int, requests: Any, replies: Any) -> None:
        self.slot, self.requests, self.replies = slot, requests, replies

    def __call__(self, member: int | None, batch: np.ndarray, shapes: list[tuple[int, int]] | None = None) -> Any:
        self.requests.put((self.slot, member, batch, shapes))
        reply = self.replies.get()
        if reply is None:
            raise Stopped("the run stopped before this batch reached the network")
        return reply


class RemoteSegmenter(Segmenter):
    """A :class:`Segmenter` in a worker process whose network part runs in the main process.

    Everything else is the segmenter's own code: resizing, colour constancy and normalisation before, the
    resize back, threshold and post-processing after. With ``device_masks`` the main process sends back
    thresholded ``uint8`` masks at each image's size instead of probabilities (see :meth:`to_mask`).
    """

    def __init__(self, member: Member, channel: Channel, index: int | None, device_masks: bool) -> None:
        super().__init__(channel, member.config, batch_size=member.batch_size, tta=False,
                         postprocess=list(member.postprocess))
        self._threshold = member.threshold  # the main process's, as it resolved it
        self.channel, self.index, self.device_masks = channel, index, device_masks

    def network(self, batch: np.ndarray) -> np.ndarray:
        return self.channel(self.index, batch)

    def predict_proba_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.device_masks:
            return super().predict_proba_batch(images)
        out: list[np.ndarray] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            out.extend(self.channel(self.index, self.network_inputs(chunk), [output_shape(im) for im in chunk]))
        return out

    def to_mask(self, probability: np.ndarray) -> np.ndarray:
        """A ``uint8`` map is a mask thresholded on the device (``device_masks``): only post-processing is
        left; a probability map (a device mask that came out empty, for the empty-mask fallback) as always."""
        if probability.dtype == np.uint8:
            return apply_postprocessing(probability.astype(bool), self.postprocess)
        return super().to_mask(probability)


def start_worker(parent: int, spec: ModelSpec | None, remote: RemoteModel | None, requests: Any,
                  replies: list[Any], slots: Any, ready: Any) -> None:
    """A worker's set-up, once: its model (loaded from ``spec``, or ``remote``'s stand-in) and its share of
    the machine."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the main process stops the run
    _end_with_parent(parent)
    import cv2

    cv2.setNumThreads(1)  # the workers are the parallelism: no pool of OpenCV threads inside each
    slot = slots.get()
    if spec is not None:
        _WORKER["predictor"] = spec.load()
    else:
        _WORKER["predictor"] = remote.attach(Channel(slot, requests, replies[slot]))
    ready.put(slot)


def _end_with_parent(parent: int) -> None:
    """End this worker as soon as the main process ends, even by SIGKILL.

    Its parent is the fork server, not the main process, and the fork server lives as long as any worker
    does (each holds its liveness pipe), so neither a parent-death signal nor a pipe would fire: a thread
    waits on the main process itself (a pidfd on Linux; elsewhere it polls every 0.2 s).
    """
    try:
        handle = os.pidfd_open(parent)
    except (AttributeError, OSError):
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])  # readable once the process has ended
        else:
            while _alive(parent):
                time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="skinnet-main-watch").start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_only() -> None:
    """A task that only makes a worker start (the pool starts them as tasks come)."""


def run_batch(items: Sequence[WorkItem], store: OutputStore, batch_size: int, reader: Reader,
             masks: bool) -> list[Outcome]:
    """A worker's task: one batch from file to outputs, as in one process."""
    predictor = _WORKER["predictor"]
    if isinstance(predictor, RemoteSegmenter):
        predictor.device_masks = masks
    return predict_batch(predictor, items, store, batch_size, False, reader)
