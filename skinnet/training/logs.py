"""Per-epoch logs: the fold's epoch log rewritten atomically every epoch, and TensorBoard when it is installed."""

from __future__ import annotations

from skinnet import runs
from skinnet.runs import FoldPaths


class EpochLog:
    """Collects one row per epoch and keeps the fold's epoch log (and TensorBoard events) up to date.

    Args:
        paths: the fold's files (:func:`skinnet.runs.fold_paths`).
        rows: rows already logged (when resuming), kept as they are.
    """

    def __init__(self, paths: FoldPaths, rows: list[dict[str, float]] | None = None) -> None:
        self.path = paths.log
        self.rows = list(rows or [])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(paths.tensorboard))
        except ImportError:  # TensorBoard is optional
            self.writer = None

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        runs.write_log(self.path, self.rows)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
