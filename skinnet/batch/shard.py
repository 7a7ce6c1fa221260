"""``--shard K/N``: a stable 1/N of the images, chosen by a hash of each image's ID.

An image belongs to shard ``K`` when the SHA-256 of its ID, read as a number, is ``K - 1`` modulo ``N``.
The choice depends on the ID alone, not on a position in a file list, so adding or removing files never
moves an image to another shard; every image belongs to exactly one of the ``N`` shards.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from skinnet.config import ConfigError

TABLE = "predictions.csv"  # a run's table, one row per image; a shard's is shard_table(TABLE, shard)
# More shards than images in any archive would leave most of them empty, and merge-shards looks for each
# one's table; 100,000 shards of a 10-million-image archive still hold 100 images each.
MAX_SHARDS = 100_000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, like SLURM array task numbers from 1)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"shard {self.index}/{self.count}: N must be between 1 and {MAX_SHARDS:,}")
        if not 1 <= self.index <= self.count:
            raise ConfigError(f"shard {self.index}/{self.count}: K must be between 1 and N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/8"`` → shard 2 of 8.

        Raises:
            ConfigError: not of the form ``K/N`` with ``1 <= K <= N <=`` :data:`MAX_SHARDS`.
        """
        match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", text)
        if not match:
            raise ConfigError(f"--shard {text!r}: expected K/N, e.g. 1/4 (shard 1 of 4)")
        index, count = match.groups()
        if max(len(index.lstrip("0")), len(count.lstrip("0"))) > 12:  # never convert a number of 5,000 digits
            shown = "/".join(part if len(part) <= 12 else part[:12] + "..." for part in (index, count))
            which = f"N must be between 1 and {MAX_SHARDS:,}" if len(count.lstrip("0")) > 12 else \
                "K must be between 1 and N"
            raise ConfigError(f"shard {shown}: {which}")
        return cls(int(index), int(count))

    def owns(self, image_id: str) -> bool:
        """Whether ``image_id`` belongs to this shard."""
        return shard_number(image_id, self.count) == self.index

    @property
    def tag(self) -> str:
        """``shard-K-of-N``: the suffix of this shard's tables."""
        return f"shard-{self.index}-of-{self.count}"


def shard_number(image_id: str, count: int) -> int:
    """The shard (1..count) that ``image_id`` belongs to."""
    digest = hashlib.sha256(image_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def shard_table(path: str | Path, shard: Shard | None) -> Path:
    """Where a shard writes the table that a whole run writes to ``path``: ``X.csv`` → ``X.shard-K-of-N.csv``."""
    path = Path(path)
    return path if shard is None else path.with_name(f"{path.stem}.{shard.tag}{path.suffix}")
