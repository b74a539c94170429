"""What a router reports in $SRV.STATS beyond counters: recent latency and the backlog."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
"""Latency percentiles cover results of the last minute, so an idle hub shows none."""


class RecentLatencies:
    """Task latencies of the last `window` seconds (at most `limit` kept)."""

    def __init__(
        self,
        window: float = WINDOW_S,
        limit: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=limit)

    def add(self, ms: float) -> None:
        """Record one task's submit-to-result latency."""
        self._samples.append((self.clock(), ms))

    def p95(self) -> float | None:
        """P95 over the window, or None when no task finished in it."""
        since = self.clock() - self.window
        while self._samples and self._samples[0][0] < since:
            self._samples.popleft()
        values = sorted(ms for _, ms in self._samples)
        return values[int(0.95 * (len(values) - 1))] if values else None


@dataclass
class Backlog:
    """The task stream as the router last looked at it (every lane together)."""

    waiting: int = 0  # stored, not yet delivered to any router
    held: int = 0  # delivered, not yet acknowledged
    oldest_age_s: float = 0.0
