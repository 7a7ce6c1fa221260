"""How fast the server's queue drains, measured, for an honest ``Retry-After``.

The time between two finished images while more were waiting is exactly the queue's drain time per image,
whatever the image sizes, the worker count or what else shares the cores. Until a few such intervals exist
(a fresh server, or one never busy), the images' own compute times divided among the workers stand in.
"""

from __future__ import annotations

import statistics
import time
from collections import deque

WINDOW = 16
# Before anything was measured at all: a guess of the right order for a CPU (the shipped model takes ~0.1 s).
PRIOR_SECONDS = 1.0


class DrainRate:
    """Seconds per image of the queue, from the last :data:`WINDOW` completions.

    Args:
        workers: images computed side by side.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.busy_intervals: deque[float] = deque(maxlen=WINDOW)
        self.compute_seconds: deque[float] = deque(maxlen=WINDOW)
        self.last_finished: float | None = None
        self.waiting_after_last = 0

    def done(self, seconds: float, still_queued: int) -> None:
        """Record a finished image: its compute time and how many requests remain admitted after it."""
        now = time.monotonic()
        if self.last_finished is not None and self.waiting_after_last > 0:
            self.busy_intervals.append(now - self.last_finished)
        self.last_finished, self.waiting_after_last = now, still_queued
        self.compute_seconds.append(seconds)

    def seconds_per_image(self) -> float:
        """The measured drain time per image (median of the recent busy intervals), or the best stand-in."""
        if len(self.busy_intervals) >= 3:
            return statistics.median(self.busy_intervals)
        if self.compute_seconds:
            return statistics.median(self.compute_seconds) / self.workers
        return PRIOR_SECONDS / self.workers

    def seconds_to_drain(self, queued: int) -> float:
        """Seconds until ``queued`` admitted requests are done, at the measured rate."""
        return queued * self.seconds_per_image()
