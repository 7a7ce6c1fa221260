"""Inflating a raw deflate stream under a budget, so that a small file cannot expand to fill memory.

A deflate stream can expand about a thousand times: 2 MB of it become 2 GB. :func:`inflated_size` reads the
stream once, keeping none of its output, and stops as soon as the output passes the limit; only a stream
found to be within it is inflated for real by :func:`inflate`, into a buffer of exactly its size. What a
refused stream costs is then the time to inflate ``limit`` bytes (about a second for 300 MB), never memory.
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO

# Compressed bytes read at a time, and the most output one decompress call may make.
CHUNK = 1 << 20


class InflateError(ValueError):
    """A deflate stream that is corrupt, ends early, or inflates past the limit (``too_large``)."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.too_large = too_large


def _inflate(source: BinaryIO, limit: int, sink: BinaryIO | None) -> int:
    """Inflate the raw deflate stream from ``source``'s position; the bytes out, or :class:`InflateError`."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pending = b""
    while not inflater.eof:
        if not pending:
            pending = source.read(CHUNK)
            if not pending:
                raise InflateError(f"the deflated data ends early, after {total:,} bytes inflated")
        try:
            # At most CHUNK bytes out per call: a chunk of a bomb never inflates all at once.
            out = inflater.decompress(pending, CHUNK)
        except zlib.error as err:
            raise InflateError(f"corrupt deflated data ({err})") from err
        pending = inflater.unconsumed_tail
        total += len(out)
        if total > limit:
            raise InflateError(f"the deflated data inflates to more than {limit:,} bytes", too_large=True)
        if sink is not None:
            sink.write(out)
    return total


def inflated_size(source: BinaryIO, limit: int) -> int:
    """The size of the raw deflate stream from ``source``'s position once inflated, its output discarded.

    Raises:
        InflateError: corrupt, cut short, or more than ``limit`` bytes (``too_large``; reading stops there).
    """
    return _inflate(source, limit, None)


def inflate(source: BinaryIO, limit: int) -> io.BytesIO:
    """The raw deflate stream from ``source``'s position, inflated into memory, at most ``limit`` bytes.

    The stream is read twice: once to measure it (:func:`inflated_size`), then into a buffer of that size.
    ``source`` must be seekable.

    Raises:
        InflateError: as :func:`inflated_size`.
    """
    start = source.tell()
    size = inflated_size(source, limit)
    source.seek(start)
    buffer = io.BytesIO()
    if size:  # grown once to the final size; each chunk is then copied in place
        buffer.seek(size - 1)
        buffer.write(b"\0")
        buffer.seek(0)
    _inflate(source, size, buffer)
    buffer.seek(0)
    return buffer
