"""Per-epoch logs: a CSV rewritten atomically every epoch, and TensorBoard when it is installed."""

from __future__ import annotations

import csv
from pathlib import Path

from skinnet.data.io import write_csv

LOG_COLUMNS = ("epoch", "train_loss", "train_dc", "train_ji", "val_loss", "val_dc", "val_ji", "lr", "seconds")


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Rows of a training log CSV, numbers as floats (epoch as int)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [{key: (int(value) if key == "epoch" else float(value)) for key, value in row.items()}
                for row in csv.DictReader(handle)]


class EpochLog:
    """Collects one row per epoch and keeps ``log.csv`` (and TensorBoard events) up to date.

    Args:
        folder: the fold's output folder.
        rows: rows already logged (when resuming), kept as they are.
    """

    def __init__(self, folder: str | Path, rows: list[dict[str, float]] | None = None) -> None:
        self.path = Path(folder) / "log.csv"
        self.rows = list(rows or [])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(folder) / "tensorboard"))
        except ImportError:  # TensorBoard is optional
            self.writer = None

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        write_csv(self.path, self.rows, LOG_COLUMNS)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, int(row["epoch"]))
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
