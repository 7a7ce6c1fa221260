"""The output folder of a resumable run: which images are done, and writing one image's outputs safely.

Each finished image is recorded in a journal, an append-only JSON-lines file per process under
``OUT/.skinnet/journal/<run key>/`` (see :mod:`skinnet.batch.manifest` for the key), so shards and
cluster workers never write the same file. Committing an image:

1. deletes the outputs that an earlier run of another model or options left for it;
2. appends its record (ID, input, files, table row) to the journal;
3. writes its files, each atomically, in the writers' order (the mask last).

An image is done when the journal of the folder's current key records it and all its files exist, so a
kill at any moment leaves it either done or recomputed on the next run, never reused stale. A run with
another key first deletes the files that other keys' journals record and that its own writers do not
write (an overlay, a SEG of the old options: nothing would ever replace them), then discards those
journals: outputs it does not recompute are then unrecorded, and a later run of the old key recomputes
them too. The record and each file are synced to the disk (``fsync``), so after a power loss a recorded
image's files are complete or missing, never empty.

A process renames its journal ``*.closed.jsonl`` when it closes it; the next run of the key merges the
closed journals into one, keeping the last record of each image, so ``--overwrite`` runs do not grow the
journal. Journals still open (another shard running now, a killed process) are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from skinnet.batch.manifest import MANIFEST, read_manifest, run_key, write_manifest
from skinnet.batch.writers import ImageResult, OutputWriter
from skinnet.data.atomic import atomic_path, fsync_dir, json_safe

JOURNALS = Path(".skinnet") / "journal"
CLOSED = ".closed.jsonl"
# One open journal per process and folder, shared by every store unpickled in that process (cluster tasks).
_OPEN: dict[tuple[Path, int], IO[str]] = {}
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class WorkItem:
    """An image to predict, and the output files of it that were already in the folder (to delete first)."""

    id: str
    path: Path
    stale: tuple[str, ...] = ()


class OutputStore:
    """Outputs of one run in ``out_dir``: plans what is left to do, commits finished images.

    Args:
        out_dir: the output folder.
        writers: the output writers (see :mod:`skinnet.batch.writers`).
        identity: what produced the outputs (:func:`skinnet.batch.manifest.run_identity`); ``None``
            keeps no journal and no manifest: every image is computed (a model held only in memory).
    """

    def __init__(self, out_dir: str | Path, writers: list[OutputWriter], identity: dict[str, Any] | None) -> None:
        self.out_dir = Path(out_dir)
        self.writers = list(writers)
        self.identity = identity
        self.key = run_key(identity) if identity else None
        self._prepared_in: int | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lock": None, "_prepared_in": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def journal_dir(self) -> Path | None:
        return self.out_dir / JOURNALS / self.key if self.key else None

    def files(self, image_id: str) -> list[str]:
        """Every file the writers make for ``image_id``."""
        return [name for writer in self.writers for name in writer.files(image_id)]

    def records(self) -> dict[str, dict[str, Any]]:
        """The journal's records by image ID; a line cut short by a kill is ignored."""
        return journal_records(self.journal_dir)[0] if self.journal_dir else {}

    def other_records(self) -> list[dict[str, Any]]:
        """The records of every other key's journal in the folder (outputs of other runs)."""
        root = self.out_dir / JOURNALS
        folders = [folder for folder in root.iterdir() if folder.name != self.key] if root.is_dir() else []
        return [record for folder in folders for record in journal_records(folder)[0].values()]

    def outputs_among(self, paths: Iterable[Path]) -> set[Path]:
        """The files of ``paths`` that are outputs in this folder, never inputs (an ``--out`` inside an input
        folder): named by the writers for one of ``paths``' IDs, or recorded by a journal of any key."""
        paths = list(paths)
        folder, parents = self.out_dir.resolve(), {}
        inside = [path for path in paths if parents.setdefault(path.parent, path.parent.resolve()) == folder]
        if not inside:
            return set()
        names = {name for path in paths for name in self.files(path.stem)}
        names |= {name for record in self.other_records() + list(self.records().values())
                  for name in _recorded_files(record)}
        return {path for path in inside if path.name in names}

    def compact(self) -> None:
        """Merge the closed journals of this key into one, the last record of each image kept (written and
        synced before the merged ones are deleted, so a kill loses nothing)."""
        folder = self.journal_dir
        closed = sorted(folder.glob(f"*{CLOSED}")) if folder is not None and folder.is_dir() else []
        if len(closed) < 2:
            return
        assert folder is not None
        records, read = journal_records(folder, closed)
        with atomic_path(folder / f"compacted-{uuid.uuid4().hex[:8]}{CLOSED}") as tmp:
            tmp.write_text("".join(_line(record) for record in records.values()), encoding="utf-8")
        for path in read:
            path.unlink(missing_ok=True)
        fsync_dir(folder)

    def plan(self, images: Iterable[tuple[str, Path]], resume: bool,
             extra_files: Iterable[str] = ()) -> tuple[list[WorkItem], list[str]]:
        """Split ``(id, path)`` pairs into work left to do and IDs already done.

        Also deletes the temporaries that a killed run left for these images' files and ``extra_files``.

        Args:
            images: the images of this run.
            resume: skip images that a run of the same key finished; ``False`` recomputes all.
            extra_files: other files of this run (its table), whose temporaries may be deleted too.
        """
        images = list(images)
        listing = {entry.name for entry in os.scandir(self.out_dir)} if self.out_dir.is_dir() else set()
        if self.key and (read_manifest(self.out_dir) or {}).get("key") == self.key:
            self.compact()
        manifest = read_manifest(self.out_dir) if resume and self.key else None
        records = self.records() if manifest and manifest.get("key") == self.key else {}
        expected = {name: image_id for image_id, _ in images for name in self.files(image_id)}
        ours = set(expected) | set(extra_files)
        for name in listing:
            if name.startswith(".") and name.endswith(".tmp") and name[1:-4].rsplit(".", 1)[0] in ours:
                (self.out_dir / name).unlink(missing_ok=True)
        todo, done = [], []
        for image_id, path in images:
            present = tuple(name for name in self.files(image_id) if name in listing)
            if image_id in records and len(present) == len(self.files(image_id)):
                done.append(image_id)
            else:
                todo.append(WorkItem(image_id, path, present))
        return todo, done

    def is_done(self, item: WorkItem) -> bool:
        """Whether ``item`` was committed in this run already (by a task that a cluster then ran again)."""
        files = self.files(item.id)
        return not item.stale and all((self.out_dir / name).exists() for name in files)

    def commit(self, result: ImageResult, stale: Iterable[str] = ()) -> dict[str, Any]:
        """Write one image's outputs (see the module docstring); returns its journal record."""
        self._prepare()
        for name in stale:
            (self.out_dir / name).unlink(missing_ok=True)
        for writer in self.writers:
            result.fields.update(writer.fields(result))
        record = {"id": result.id, "image": str(result.path), "files": self.files(result.id),
                  "fields": result.fields}
        if self.journal_dir is not None:
            self._append(record)
        for writer in self.writers:
            writer.write(result, self.out_dir)
        return record

    def _prepare(self) -> None:
        """Once per process, before the first output: claim the folder for this key (see the docstring)."""
        if self._prepared_in == os.getpid():
            return
        with self._lock:
            if self._prepared_in == os.getpid():
                return
            manifest = read_manifest(self.out_dir)
            if manifest is None or manifest.get("key") != self.key:
                for record in self.other_records():  # before their journals go: else nothing ever names them
                    for name in set(_recorded_files(record)) - set(self.files(str(record["id"]))):
                        (self.out_dir / name).unlink(missing_ok=True)
                root = self.out_dir / JOURNALS
                for folder in root.iterdir() if root.is_dir() else []:
                    if folder.name != self.key:
                        shutil.rmtree(folder, ignore_errors=True)
                if self.key:
                    write_manifest(self.out_dir, self.identity, self.key)
                elif manifest is not None:
                    (self.out_dir / MANIFEST).unlink(missing_ok=True)
            self._prepared_in = os.getpid()

    def _append(self, record: dict[str, Any]) -> None:
        line = _line(record)
        folder = self.journal_dir
        assert folder is not None
        with _OPEN_LOCK:  # keyed by process too: a forked child must not write into its parent's file
            handle = _OPEN.get((folder, os.getpid()))
            if handle is None or handle.closed:
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
                handle = _OPEN[folder, os.getpid()] = open(folder / name, "a", encoding="utf-8")  # noqa: SIM115
                for created in (folder, folder.parent, folder.parent.parent, self.out_dir):
                    fsync_dir(created)
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())  # the record claims the image's files: it must outlive a power loss

    def close(self) -> None:
        """Close this process's journal of this folder and mark it closed (a later commit opens a new one)."""
        with _OPEN_LOCK:
            handle = _OPEN.pop((self.journal_dir, os.getpid()), None) if self.journal_dir else None
            if handle is not None:
                handle.close()
                path = Path(handle.name)
                path.rename(path.with_name(path.name.removesuffix(".jsonl") + CLOSED))
                fsync_dir(path.parent)


def journal_records(folder: Path, paths: list[Path] | None = None) -> tuple[dict[str, dict[str, Any]], list[Path]]:
    """The records of a journal folder (or of its files ``paths``) by image ID, the last of each ID kept
    (files in the order they were last written), and the files read. A line cut short by a kill is ignored;
    a file that another run's :meth:`OutputStore.compact` merged away meanwhile is read from the merged one.
    """
    while True:
        found: dict[str, dict[str, Any]] = {}
        listed = list(folder.glob("*.jsonl")) if paths is None and folder.is_dir() else list(paths or [])
        try:
            listed.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
            for path in listed:
                for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
                    try:
                        record = json.loads(line) if line.endswith("\n") else None
                    except ValueError:
                        record = None
                    if isinstance(record, dict) and "id" in record:
                        found[record["id"]] = record
        except FileNotFoundError:
            if paths is not None:
                paths = [path for path in paths if path.exists()]
            continue
        return found, listed


def _recorded_files(record: dict[str, Any]) -> list[str]:
    """The output files a journal record names, plain names in the folder only (never a path elsewhere)."""
    files = record.get("files")
    return [name for name in files if isinstance(name, str) and name == Path(name).name
            and not name.startswith(".") and name != MANIFEST] if isinstance(files, list) else []


def _line(record: dict[str, Any]) -> str:
    return json.dumps(json_safe(record), default=_plain) + "\n"


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and paths in table rows."""
    return value.item() if hasattr(value, "item") else str(value)
