"""Batch prediction of files and folders: every good file gets a mask, every bad one is reported.

Archive scale: a run can resume (images whose outputs a run of the same model and options finished are
skipped), take a stable shard of the inputs, overlap decoding and writing with the network in worker
threads, and run on a Dask cluster. See docs/how-to/archive_prediction.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skinnet.batch.local import Executor, LocalExecutor, Outcome, ProgressBar, Reader
from skinnet.batch.manifest import run_identity
from skinnet.batch.merge import RUN_KEY
from skinnet.batch.shard import TABLE, Shard, shard_table
from skinnet.batch.store import OutputStore
from skinnet.batch.writers import OutputWriter, standard_writers
from skinnet.config import ConfigError
from skinnet.data.io import read_image
from skinnet.data.layout import find_images
from skinnet.data.tables import write_csv
from skinnet.inference.predictor import FLIPS, Predictor
from skinnet.networks.budget import MAX_BATCH_BYTES, MAX_BATCH_SIZE, network_cost

TABLE_COLUMNS = ["id", "image", "status", "reason"]


@dataclass
class PredictionReport:
    """What a run did.

    Attributes:
        written: the last output file of each image predicted now (the mask, with the standard writers).
        failed: one line per file that failed: the file and the reason.
        skipped: IDs whose outputs an earlier run of the same model and options had finished.
        table: the run's table (``predictions.csv``, or ``predictions.shard-K-of-N.csv``), if one was written.
    """

    written: list[Path] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    table: Path | None = None


def unique_images(paths: Iterable[Path]) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """``(id, path)`` of each image, and ``(id, problem)`` for each further file with an ID already taken."""
    seen: dict[str, Path] = {}
    problems: list[tuple[str, str]] = []
    for path in paths:
        first = seen.setdefault(path.stem, path)
        if first != path:
            problems.append((path.stem, f"{path}: duplicate ID {path.stem!r} (also {first}); skipped"))
    return list(seen.items()), problems


def predict_files(predictor: Predictor, inputs: Iterable[str | Path], out_dir: str | Path,
                  with_overlay: bool = False, with_probability: bool = False, strict: bool = False, *,
                  writers: Sequence[OutputWriter] | None = None, resume: bool = False, shard: Shard | None = None,
                  batch_size: int = 1, workers: int = 1, executor: Executor | None = None,
                  reader: Reader = read_image,
                  progress: bool | None = False) -> PredictionReport:
    """Write ``<id>_segmentation.png`` (0/255, the input's size) for each image of ``inputs`` into ``out_dir``.

    Where the model was loaded from files (``Segmenter.from_file``, ``Ensemble.from_files``), the folder
    also gets ``manifest.json`` (the model files' SHA-256 and the options), a journal of finished images
    (``.skinnet/``) and ``predictions.csv`` (one row per image: ID, input, status, reason, output files).

    Args:
        predictor: the model to run (a :class:`~skinnet.inference.segmenter.Segmenter`, an ensemble, any
            :class:`~skinnet.inference.predictor.Predictor`).
        inputs: image files and folders of images.
        out_dir: where masks (and overlays ``<id>_overlay.png``) go.
        with_overlay: also write the image with the lesion outlined.
        with_probability: also write the lesion probability as ``<id>_probability.png`` (0-255).
        strict: stop at the first bad file instead of reporting it and going on.
        writers: the outputs of each image, instead of the standard ones (see
            :mod:`skinnet.batch.writers`); ``with_overlay`` and ``with_probability`` are then ignored.
        resume: skip images whose outputs a run of the same model files and options finished.
        shard: predict only this shard's images (its table is ``predictions.shard-K-of-N.csv``).
        batch_size: images per forward pass.
        workers: threads of the default executor, each taking a batch from file to outputs (1: one batch
            after another).
        executor: what runs the batches (an :class:`~skinnet.batch.local.Executor`); ``None``: a
            :class:`~skinnet.batch.local.LocalExecutor` of ``workers`` threads. On a cluster (a
            :class:`~skinnet.batch.dask.DaskExecutor`) ``predictor`` only names the model; in worker
            processes, a :class:`~skinnet.batch.processes.ProcessExecutor`.
        reader: reads one input file (see :func:`skinnet.batch.local.predict_batch`).
        progress: show a progress bar; ``None`` shows it on a terminal only.
    """
    out_dir = Path(out_dir)
    writers = standard_writers(with_overlay, with_probability) if writers is None else list(writers)
    check_batch_size(predictor, batch_size)
    identity = run_identity(predictor, writers)
    if identity is not None and hasattr(reader, "identity"):  # a reader that changes the outputs (JPEG drafts)
        identity["input"] = reader.identity()
    store = OutputStore(out_dir, writers, identity)
    paths = find_images(inputs)
    outputs = store.outputs_among(paths)  # --out inside an input folder: last run's overlays are no images
    images, duplicates = unique_images(path for path in paths if path not in outputs)
    if shard is not None:
        images = [(image_id, path) for image_id, path in images if shard.owns(image_id)]
        duplicates = [(image_id, line) for image_id, line in duplicates if shard.owns(image_id)]
    table = shard_table(out_dir / TABLE, shard) if store.key else None
    todo, skipped = store.plan(images, resume, extra_files=[table.name] if table else [])
    bar = ProgressBar(len(todo), progress)
    finished: list[Outcome] = []

    def done(batch: list[Outcome]) -> None:
        finished.extend(batch)
        bar(batch)

    try:
        executor = executor or LocalExecutor(workers)
        outcomes = executor.run(predictor, todo, store, batch_size, strict, reader, on_done=done)
    except BaseException:  # a lost cluster, a full disk, Ctrl-C: the table still says what finished
        if table is not None and (finished or store.records()):  # cluster tasks may have finished images
            write_table(table, images, store, {outcome.id: outcome.error for outcome in finished},
                        store.key if shard else None, listing=set(os.listdir(out_dir)))
        raise
    finally:
        bar.close()
        store.close()
    errors = {outcome.id: outcome.error for outcome in outcomes}
    report = PredictionReport(skipped=skipped, table=table)
    written = [item.id for item in todo if item.id in errors and errors[item.id] is None]
    report.written = [out_dir / name for image_id in written for name in store.files(image_id)[-1:]]
    report.failed = [line for _, line in duplicates] + [str(errors[item.id]) for item in todo
                                                        if errors.get(item.id)]
    if table is not None:
        write_table(table, images, store, errors, store.key if shard else None)
    return report


def max_batch_size(predictor: Predictor) -> int:
    """The largest batch whose forward pass needs at most :data:`~skinnet.networks.budget.MAX_BATCH_BYTES` of
    activations: each image's, measured as :func:`~skinnet.networks.budget.network_cost` does, times its flip views
    with TTA (the most costly member of an ensemble, which runs them one by one); at most
    :data:`~skinnet.networks.budget.MAX_BATCH_SIZE`."""
    per_image = 0
    for member in getattr(predictor, "members", [predictor]):
        try:
            cost = network_cost(member.config).activation_bytes
        except Exception:  # a predictor whose config builds no skinnet network: only the count applies
            continue
        per_image = max(per_image, cost * (len(FLIPS) if getattr(member, "tta", False) else 1))
    return max(1, min(MAX_BATCH_SIZE, MAX_BATCH_BYTES // per_image if per_image else MAX_BATCH_SIZE))


def check_batch_size(predictor: Predictor | None, batch_size: int) -> None:
    """Refuse a batch of more than :data:`~skinnet.networks.budget.MAX_BATCH_SIZE` images, or more than
    :func:`max_batch_size` allows ``predictor`` (``None``: the count alone, before a model is loaded).

    Raises:
        ConfigError: one line naming the batch size, what it would need and the largest allowed.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size {str(batch_size)[:30]}: allowed 1 to {MAX_BATCH_SIZE:,} images per "
                          "forward pass")
    if predictor is None or batch_size == 1:
        return
    allowed = max_batch_size(predictor)
    if batch_size > allowed:
        raise ConfigError(f"--batch-size {batch_size}: a forward pass of {batch_size} images would need more "
                          f"than the limit of {MAX_BATCH_BYTES / 1e9:g} GB of activations; this model allows "
                          f"at most {allowed}")


def write_table(path: Path, images: list[tuple[str, Path]], store: OutputStore, errors: dict[str, str | None],
                run_key: str | None = None, listing: set[str] | None = None) -> None:
    """One row per image of the run, sorted by ID: done (from the journal) or failed (with the reason).

    Args:
        path: the table.
        images: ``(id, path)`` of the run's images.
        store: the output folder.
        errors: the outcome of each image predicted now (``None``: written).
        run_key: a shard's table names its run in a ``run_key`` column (checked by merge-shards).
        listing: the folder's file names, for a run cut short: a recorded image counts as done only where
            its files are all there (not cut off mid-write).
    """
    records = store.records()
    rows: list[dict[str, Any]] = []
    for image_id, image in sorted(images):
        if errors.get(image_id):
            rows.append({"id": image_id, "image": str(image), "status": "failed", "reason": errors[image_id]})
        elif image_id in records and (listing is None or listing.issuperset(store.files(image_id))):
            record = records[image_id]
            rows.append({**record["fields"], "id": image_id, "image": str(image), "status": "ok",
                         "reason": ""})
    columns = list(dict.fromkeys(TABLE_COLUMNS + [key for row in rows for key in row]))
    if run_key is not None:
        rows = [{**row, RUN_KEY: run_key} for row in rows]
        columns.append(RUN_KEY)
    write_csv(path, rows, columns)

