"""The node's queue on disk: nothing received is lost, each result goes out in order, a crash resumes.

Layout of the queue folder::

    incoming/                 objects being received (``*.part``; deleted on start: never acknowledged)
    inbox/<seq>.dcm           received and acknowledged, waiting to be segmented
    outbox/<seq>/             the results of <seq>: 1-seg.dcm, 2-sr.dcm, result.json; a ``<file>.sent``
                              marker per file delivered; ``attempts`` counts the destination's refusals
    failed/<seq>.dcm, .txt    objects that could not be segmented, each with its one-line reason
    failed/<seq>-results/     results the destination refused ``max_attempts`` times (reason in reason.txt)
    delivered.log             one line per result delivered: sequence, source UID, result UIDs, time
    .lock                     held (flock) by the running node: one node per queue

``<seq>`` is a 12-digit sequence number in the order of receipt. Every step writes the new state to a new
name, fsyncs it and its folder, and only then removes the old state, so a ``kill -9`` at any moment leaves
each object in exactly one of: not acknowledged (the caller sends it again), in the inbox, in the outbox
(with the files already delivered marked), done. A result whose delivery was cut between the destination's
answer and its marker is sent again on restart: its UIDs are derived from the source and the model
(:func:`skinnet.clinical.dicom_sr.derived_uid`), so the destination receives the same object and keeps one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from skinnet.config import ConfigError

SEQUENCE_DIGITS = 12


class QueueFull(Exception):
    """The queue holds its maximum of objects; the message says how many."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path`` and fsync it (not its folder)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sequence(name: str) -> int | None:
    stem = name.split(".")[0].split("-")[0]
    return int(stem) if len(stem) == SEQUENCE_DIGITS and stem.isdigit() else None


@dataclass(frozen=True)
class Results:
    """One source's results waiting in the outbox."""

    seq: str
    folder: Path
    info: dict[str, Any]

    def files(self) -> list[Path]:
        """The result files in the order they are sent (the SEG before the SR that references it)."""
        return sorted(path for path in self.folder.glob("*.dcm"))

    def pending(self) -> list[Path]:
        return [path for path in self.files() if not path.with_name(path.name + ".sent").exists()]

    @property
    def attempts(self) -> int:
        try:
            return int((self.folder / "attempts").read_text())
        except (OSError, ValueError):
            return 0


class NodeQueue:
    """The queue folder of one node (see the module docstring).

    Args:
        root: the folder (created if missing).
        size: most objects waiting in inbox and outbox together.

    Raises:
        ConfigError: the folder is another running node's.
    """

    def __init__(self, root: str | Path, size: int) -> None:
        self.root = Path(root)
        self.size = size
        self.incoming, self.inbox = self.root / "incoming", self.root / "inbox"
        self.outbox, self.failed = self.root / "outbox", self.root / "failed"
        for folder in (self.root, self.incoming, self.inbox, self.outbox, self.failed):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock_file: IO[str] | None = open(self.root / ".lock", "w")  # noqa: SIM115 - held for the node's life
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self._lock_file.close()
            raise ConfigError(f"{self.root}: another skinnet dicom-node is using this queue") from err
        self._cond = threading.Condition()
        self.recovered = self._recover()
        names = [p.name for folder in (self.inbox, self.outbox, self.failed) for p in folder.iterdir()]
        self._next = max((s for s in map(_sequence, names) if s is not None), default=0) + 1

    def _recover(self) -> dict[str, int]:
        """Undo what a killed node left half done; returns what waits: ``{"inbox": n, "outbox": m}``."""
        for part in self.incoming.iterdir():  # never acknowledged: the caller did not get a success
            part.unlink()
        for folder in self.outbox.iterdir():
            if folder.name.endswith(".part"):  # segmenting was cut: the inbox still has the object
                shutil.rmtree(folder)
            elif (self.inbox / f"{folder.name}.dcm").exists():  # done, but its inbox copy not yet removed
                (self.inbox / f"{folder.name}.dcm").unlink()
        for path in self.failed.glob("*.part"):
            path.unlink() if path.is_file() else shutil.rmtree(path)
        for folder in (self.incoming, self.inbox, self.outbox, self.failed):
            fsync_dir(folder)
        return {"inbox": len(self._inbox()), "outbox": len(self._outbox())}

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # --- receiving -------------------------------------------------------------------------------------------

    def waiting(self) -> int:
        """Objects in the inbox and the outbox."""
        return self.received_count() + self.results_count()

    def received_count(self) -> int:
        """Objects received and not yet segmented."""
        return len(self._inbox())

    def results_count(self) -> int:
        """Results not yet delivered."""
        return len(self._outbox())

    def stage(self, data: bytes) -> Path:
        """Write a received object to ``incoming/`` and fsync it; :meth:`commit` then acknowledges it.

        Raises:
            QueueFull: the queue holds its maximum.
            OSError: the disk is full or unwritable.
        """
        waiting = self.waiting()
        if waiting >= self.size:
            raise QueueFull(f"queue full ({waiting} of {self.size} objects waiting)")
        path = self.incoming / f"{uuid.uuid4().hex}.part"
        try:
            write_synced(path, data)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        return path

    def commit(self, staged: Path) -> str:
        """Move a staged object into the inbox (fsynced): from now on it is the node's. Returns its ``seq``."""
        with self._cond:
            seq = f"{self._next:0{SEQUENCE_DIGITS}d}"
            self._next += 1
            os.replace(staged, self.inbox / f"{seq}.dcm")
            fsync_dir(self.inbox)
            self._cond.notify_all()
        return seq

    def discard(self, staged: Path) -> None:
        staged.unlink(missing_ok=True)

    # --- segmenting ------------------------------------------------------------------------------------------

    def _inbox(self) -> list[Path]:
        return sorted(p for p in self.inbox.glob("*.dcm") if _sequence(p.name) is not None)

    def next_received(self, timeout: float) -> Path | None:
        """The oldest object of the inbox, waiting up to ``timeout`` seconds for one; ``None`` if none came."""
        with self._cond:
            items = self._inbox()
            if not items:
                self._cond.wait(timeout)
                items = self._inbox()
        return items[0] if items else None

    def store_results(self, received: Path, files: dict[str, bytes], info: dict[str, Any]) -> Results:
        """Put the results of ``received`` into the outbox (fsynced), then remove it from the inbox."""
        seq = received.stem
        part = self.outbox / f"{seq}.part"
        if part.exists():
            shutil.rmtree(part)
        part.mkdir()
        for name, data in files.items():
            write_synced(part / name, data)
        write_synced(part / "result.json", json.dumps(info, sort_keys=True).encode())
        fsync_dir(part)
        final = self.outbox / seq
        os.replace(part, final)
        fsync_dir(self.outbox)
        received.unlink()
        fsync_dir(self.inbox)
        with self._cond:
            self._cond.notify_all()
        return Results(seq, final, info)

    def refuse_received(self, received: Path, reason: str) -> None:
        """Set aside an object that cannot be segmented, with its reason (``failed/<seq>.txt``)."""
        write_synced(self.failed / f"{received.stem}.txt", (reason + "\n").encode())
        os.replace(received, self.failed / received.name)
        fsync_dir(self.failed)
        fsync_dir(self.inbox)

    # --- delivering ------------------------------------------------------------------------------------------

    def _outbox(self) -> list[Path]:
        return sorted(p for p in self.outbox.iterdir() if p.is_dir() and _sequence(p.name) is not None
                      and not p.name.endswith(".part"))

    def results(self, limit: int | None = None) -> list[Results]:
        """The outbox's results, oldest first."""
        out = []
        for folder in self._outbox()[:limit]:
            try:
                info = json.loads((folder / "result.json").read_text())
            except (OSError, ValueError):
                info = {}
            out.append(Results(folder.name, folder, info))
        return out

    def wait_for_results(self, timeout: float) -> None:
        with self._cond:
            if not self._outbox():
                self._cond.wait(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def mark_sent(self, path: Path) -> None:
        write_synced(path.with_name(path.name + ".sent"), b"")
        fsync_dir(path.parent)

    def count_refusal(self, results: Results) -> int:
        attempts = results.attempts + 1
        tmp = results.folder / "attempts.part"
        write_synced(tmp, str(attempts).encode())
        os.replace(tmp, results.folder / "attempts")
        fsync_dir(results.folder)
        return attempts

    def delivered(self, results: Results) -> None:
        """Log the delivery and remove the results from the outbox."""
        info = results.info
        line = " ".join([results.seq, str(info.get("source", "-")), *info.get("results", []),
                         time.strftime("%Y-%m-%dT%H:%M:%S%z")])
        with open(self.root / "delivered.log", "a", encoding="utf-8") as log:
            log.write(line + "\n")
            log.flush()
            os.fsync(log.fileno())
        shutil.rmtree(results.folder)
        fsync_dir(self.outbox)

    def park(self, results: Results, reason: str) -> Path:
        """Set aside results the destination keeps refusing (``failed/<seq>-results/``)."""
        write_synced(results.folder / "reason.txt", (reason + "\n").encode())
        target = self.failed / f"{results.seq}-results"
        os.replace(results.folder, target)
        fsync_dir(self.failed)
        fsync_dir(self.outbox)
        return target
