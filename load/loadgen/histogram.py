"""Latency histograms: an HDR histogram in microseconds, read out in milliseconds."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000  # 10 minutes: far beyond any per-request timeout
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p99_9", 99.9),
)


class LatencyHistogram:
    """Records durations in seconds; reports percentiles in milliseconds."""

    def __init__(self, significant_figures: int = 3) -> None:
        self._hist: Any = HdrHistogram(LOWEST_US, HIGHEST_US, significant_figures)
        self.clamped = 0

    @property
    def count(self) -> int:
        """How many values were recorded."""
        return int(self._hist.get_total_count())

    def record(self, seconds: float) -> None:
        """Record one duration (clamped into the trackable range, and counted when clamped)."""
        micros = round(seconds * 1e6)
        if micros < LOWEST_US or micros > HIGHEST_US:
            self.clamped += 1
            micros = min(max(micros, LOWEST_US), HIGHEST_US)
        self._hist.record_value(micros)

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value of `other` to this histogram."""
        self._hist.add(other._hist)
        self.clamped += other.clamped

    def percentile_ms(self, percentile: float) -> float:
        """The value at `percentile` (0-100) in milliseconds; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._hist.get_value_at_percentile(percentile)) / 1000.0

    def max_ms(self) -> float:
        """The largest recorded value in milliseconds (HDR-equivalent); 0.0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._hist.get_max_value()) / 1000.0

    def min_ms(self) -> float:
        """The smallest recorded value in milliseconds; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._hist.get_min_value()) / 1000.0

    def mean_ms(self) -> float:
        """The mean in milliseconds; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        return float(self._hist.get_mean_value()) / 1000.0

    def summary(self) -> dict[str, float]:
        """count, min, mean, P50, P90, P95, P99, P99.9 and max (milliseconds, 3 decimals)."""
        figures: dict[str, float] = {"count": self.count}
        figures["min"] = round(self.min_ms(), 3)
        figures["mean"] = round(self.mean_ms(), 3)
        for name, percentile in PERCENTILES:
            figures[name] = round(self.percentile_ms(percentile), 3)
        figures["max"] = round(self.max_ms(), 3)
        return figures
