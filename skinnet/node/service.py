"""The running node: the SCP receiving, one worker segmenting the inbox in order, one sender delivering.

Three threads share the queue folder (:mod:`skinnet.node.queue`):

* the **SCP** (:class:`~skinnet.node.scp.StorageSCP`) acknowledges an object once it is fsynced in the inbox;
* the **worker** takes the oldest object of the inbox, segments it, measures it and writes its SEG and SR
  into the outbox; an object the file reader or the model cannot take is set aside in ``failed/`` with a
  one-line reason naming its SOP Instance UID, and the worker goes on with the next;
* the **sender** delivers the outbox oldest first, the SEG before the SR. A destination that cannot be
  reached is retried with exponential back-off (1 s doubling up to ``retry_max_seconds``), without limit:
  the results wait on disk. One that refuses a result ``max_attempts`` times has it set aside.

On SIGTERM (or Ctrl-C) the node drains: it closes its port, lets associations under way finish, then goes on
segmenting and delivering what is queued for up to ``drain_seconds``; what is left waits on disk for the next
start. A second signal stops it at once, which is safe too: every state is on disk.

What is logged (stderr, one line per event): associations refused, objects received and refused with the
reason, images segmented (time, area, diameter, confidence, flag, result UIDs), deliveries, a destination
down and back. Objects are named by their UIDs and the sequence number of the queue; no patient or study
attribute other than UIDs is ever logged.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skinnet.clinical.findings import ModelInfo
from skinnet.data.dicom import read_dicom
from skinnet.data.io import InputError
from skinnet.inference.predictor import Predictor
from skinnet.node.config import NodeConfig
from skinnet.node.queue import NodeQueue, Results
from skinnet.node.results import make_results, settings_key
from skinnet.node.scp import StorageSCP
from skinnet.node.senders import DimseSender, Rejected, StowSender, Unreachable

LOG = logging.getLogger("skinnet.node")
DELIVERY_BATCH = 8  # results per association or STOW-RS request
POLL_SECONDS = 0.5


def make_sender(config: NodeConfig) -> Any:
    if config.send_to is not None:
        return DimseSender(config.send_to, config.ae_title)
    return StowSender(str(config.stow_to), config.token)


def sop_uid_of(path: Path) -> str:
    """The SOP Instance UID of a queued file, from its meta information (written by the node)."""
    from pydicom.filereader import read_file_meta_info

    try:
        return str(read_file_meta_info(path).MediaStorageSOPInstanceUID)
    except Exception:
        return f"(unreadable {path.name})"


class Node:
    """A DICOM node: receives images, segments them, sends back their SEG and SR.

    Args:
        config: the node's settings.
        predictor: the model (loaded once, used by the worker thread alone).
        sender: where results go; by default from the config (:func:`make_sender`).
    """

    def __init__(self, config: NodeConfig, predictor: Predictor, sender: Any = None) -> None:
        self.config = config
        self.predictor = predictor
        self.model = ModelInfo.of(predictor)
        self.settings = settings_key(predictor)
        self.queue = NodeQueue(config.queue, config.queue_size)
        self.sender = sender or make_sender(config)
        self.scp = StorageSCP(config, self.queue)
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Listen and start working the queue (returns at once)."""
        self.scp.start()
        for name, target in (("skinnet-node-worker", self._work), ("skinnet-node-sender", self._deliver)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        waiting = self.queue.recovered
        LOG.info("listening on %s:%d as %s%s; results to %s; queue %s: %d received and %d results waiting",
                 self.config.host, self.scp.port, self.config.ae_title,
                 " (TLS)" if self.config.tls_cert else "", self.sender, self.config.queue, waiting["inbox"],
                 waiting["outbox"])

    def drain(self, seconds: float | None = None) -> dict[str, int]:
        """Stop receiving; segment and deliver what is queued for up to ``seconds``; stop. Returns what is left."""
        seconds = self.config.drain_seconds if seconds is None else seconds
        deadline = time.monotonic() + seconds
        self.scp.stop_listening()
        while self.scp.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._draining.set()
        self.queue.wake()
        worker, sender = self._threads
        worker.join(max(deadline - time.monotonic(), 0))
        sender.join(max(deadline - time.monotonic(), 0))
        self._stop.set()
        self.queue.wake()
        worker.join()  # at most the image in progress
        sender.join(60)
        left = {"received": self.queue.received_count(), "results": self.queue.results_count()}
        LOG.info("stopped: %d received objects and %d results left in the queue (resumed on the next start)",
                 left["received"], left["results"])
        self.queue.close()
        return left

    def run(self) -> int:
        """Start, serve until SIGTERM or SIGINT, drain (see the module docstring); the exit status."""
        stop = threading.Event()

        def on_signal(number: int, frame: Any) -> None:
            if stop.is_set():
                LOG.warning("second signal: stopping now; the queue resumes on the next start")
                os._exit(128 + number)
            LOG.info("%s: draining (up to %g s)", signal.Signals(number).name, self.config.drain_seconds)
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not stop.wait(1.0):
                pass
            self.drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    # --- the worker ------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            path = self.queue.next_received(POLL_SECONDS)
            if path is None:
                if self._draining.is_set():
                    return
                continue
            try:
                self.process(path)
            except OSError as err:  # the disk, not the object: keep it and try again
                LOG.error("cannot write the results of %s (%s): retrying in 5 s", sop_uid_of(path),
                          err.strerror or err)
                self._stop.wait(5)

    def process(self, path: Path) -> Results | None:
        """Segment one queued object into the outbox, or set it aside with its reason."""
        started = time.perf_counter()
        uid = sop_uid_of(path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's warnings may quote values, a patient's name
                source = read_dicom(path)
            probability = self.predictor.predict_proba_batch([source.pixels])[0]
            mask = self.predictor.to_mask(probability)
            results = make_results(self.predictor, self.model, self.settings, source, probability, mask)
        except InputError as err:
            return self._refuse(path, uid, err.reason)
        except (MemoryError, OSError):
            raise
        except Exception as err:  # an object the model or the builders cannot take: one line, and go on
            return self._refuse(path, uid, f"cannot segment it ({type(err).__name__}: {err})".splitlines()[0])
        stored = self.queue.store_results(path, results.encoded(), results.info())
        self.queue.wake()
        measured, confidence = results.finding.measurements, results.finding.confidence
        size = (f"area {measured.area_mm2:.1f} mm2, max diameter {measured.max_diameter_mm:.1f} mm"
                if measured.area_mm2 is not None else
                f"area {measured.area_px} px, max diameter {measured.max_diameter_px:.0f} px")
        LOG.info("segmented %s (%s) in %.2f s: %s, confidence %.3f%s; SEG %s, SR %s", uid, stored.seq,
                 time.perf_counter() - started, size, confidence.score,
                 " (flagged: check this outline)" if confidence.flagged else "", *results.info()["results"])
        return stored

    def _refuse(self, path: Path, uid: str, reason: str) -> None:
        LOG.warning("not segmented: %s (%s): %s; set aside in %s", uid, path.stem, reason, self.queue.failed)
        self.queue.refuse_received(path, f"{uid}: {reason}")
        return None

    # --- the sender ------------------------------------------------------------------------------------------

    def _deliver(self) -> None:
        delay, down_since = 1.0, None
        worker = self._threads[0] if self._threads else None
        while not self._stop.is_set():
            batch = self.queue.results(DELIVERY_BATCH)
            if not batch:
                if self._draining.is_set() and (worker is None or not worker.is_alive()):
                    return
                self.queue.wait_for_results(POLL_SECONDS)
                continue
            try:
                self.deliver(batch)
            except Unreachable as err:
                down_since = down_since or time.monotonic()
                wait = min(delay, self.config.retry_max_seconds) * random.uniform(0.9, 1.1)
                LOG.warning("destination unreachable: %s; %d results waiting, retrying in %.1f s", err,
                            self.queue.results_count(), wait)
                self._stop.wait(wait)
                delay = min(delay * 2, self.config.retry_max_seconds)
                continue
            if down_since is not None:
                LOG.info("destination %s reachable again after %.0f s", self.sender, time.monotonic() - down_since)
            delay, down_since = 1.0, None

    def deliver(self, batch: list[Results]) -> None:
        """Send the pending files of ``batch``; log and remove each result delivered whole.

        Raises:
            Unreachable: the destination is down (what was delivered before is recorded).
        """
        files = [path for results in batch for path in results.pending()]
        try:
            if files:  # none where a kill came between the last file's marker and the result's removal
                self.sender.send(files, self.queue.mark_sent)
        except Rejected as err:
            culprit = next(results for results in batch if results.pending())
            attempts = self.queue.count_refusal(culprit)
            if attempts >= self.config.max_attempts:
                target = self.queue.park(culprit, str(err))
                LOG.error("%s; refused %d times: set aside in %s", err, attempts, target)
            else:
                LOG.warning("%s (refusal %d of %d); retrying", err, attempts, self.config.max_attempts)
                self._stop.wait(min(2.0**attempts, self.config.retry_max_seconds))
        finally:
            for results in batch:
                if results.folder.exists() and not results.pending():
                    self.queue.delivered(results)
                    LOG.info("delivered SEG %s and SR %s of %s to %s", *results.info.get("results", ["?", "?"]),
                             results.info.get("source", "?"), self.sender)


def serve(config: NodeConfig, load: Callable[[], Predictor]) -> int:
    """``skinnet dicom-node``: check the config, log to stderr, load the model, run the node until SIGTERM."""
    config = config.check()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(handlers=[handler], level=logging.WARNING)  # libraries: warnings and errors only
    LOG.setLevel(logging.INFO)
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)  # its lines may show a dataset's elements
    warnings.simplefilter("ignore")  # library warnings may quote element values: patient data
    started = time.perf_counter()
    predictor = load()
    names = ";".join(Path(path).name for path in predictor.model_files) or "in memory"
    LOG.info("model %s loaded in %.1f s (%s)", names, time.perf_counter() - started, settings_key(predictor))
    return Node(config, predictor).run()
