"""Per-request outcomes gathered into HDR histograms, error counts and a per-second series."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from swarmhub.loadgen.histogram import LatencyHistogram


def intended_latency(intended: float, finished: float) -> float:
    """Latency as the caller saw it: from the moment the request was due, not when it left.

    Measuring from the intended send time charges queueing inside the load generator (and any
    stall that delayed sending) to the system, which is what avoids coordinated omission.
    """
    return max(0.0, finished - intended)


@dataclass
class OpStats:
    """Outcomes of one kind of operation."""

    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        """Counts, error codes and latency percentiles of this operation."""
        errors = sum(self.errors.values())
        done = self.ok + errors
        return {
            "ok": self.ok,
            "errors": errors,
            "error_rate": round(errors / done, 6) if done else 0.0,
            "errors_by_code": dict(sorted(self.errors.items())),
            "latency_ms": self.latency.summary(),
        }


@dataclass
class SecondBucket:
    """Outcomes that completed within one second of the measured window."""

    latency: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(2))
    ok: int = 0
    errors: int = 0
    late_starts: int = 0


class Recorder:
    """Collects every measured request; requests due before `measure_start` are warm-up."""

    def __init__(self, measure_start: float, late_threshold: float = 0.005) -> None:
        self.measure_start = measure_start
        self.late_threshold = late_threshold
        self.total = OpStats()
        self.ops: dict[str, OpStats] = {}
        self.start_lag = LatencyHistogram()
        self.late_starts = 0
        self.warmup_done = 0
        self.seconds: dict[int, SecondBucket] = {}
        self.first_finish: float | None = None
        self.last_finish: float | None = None
        self.error_samples: dict[str, str] = {}

    def measured(self, intended: float) -> bool:
        """True when a request due at `intended` counts (it is past the warm-up)."""
        return intended >= self.measure_start

    def bucket(self, at: float) -> SecondBucket:
        """The per-second bucket holding time `at`."""
        second = max(0, int(at - self.measure_start))
        found = self.seconds.get(second)
        if found is None:
            found = self.seconds[second] = SecondBucket()
        return found

    def record(
        self,
        kind: str,
        intended: float,
        started: float,
        finished: float,
        error_code: str | None = None,
        error_message: str = "",
    ) -> None:
        """Record one request that was due at `intended`, left at `started`, ended at `finished`."""
        if not self.measured(intended):
            self.warmup_done += 1
            return
        op = self.ops.get(kind)
        if op is None:
            op = self.ops[kind] = OpStats()
        lag = max(0.0, started - intended)
        self.start_lag.record(lag)
        bucket = self.bucket(finished)
        if lag > self.late_threshold:
            self.late_starts += 1
            bucket.late_starts += 1
        if error_code is None:
            latency = intended_latency(intended, finished)
            self.total.latency.record(latency)
            op.latency.record(latency)
            self.total.ok += 1
            op.ok += 1
            bucket.latency.record(latency)
            bucket.ok += 1
        else:
            self.total.errors[error_code] += 1
            op.errors[error_code] += 1
            bucket.errors += 1
            self.error_samples.setdefault(error_code, error_message[:300])
        if self.first_finish is None or finished < self.first_finish:
            self.first_finish = finished
        if self.last_finish is None or finished > self.last_finish:
            self.last_finish = finished

    @property
    def completed(self) -> int:
        """Measured requests that ended, well or not."""
        return self.total.ok + sum(self.total.errors.values())

    def window(self) -> float:
        """Seconds from the start of measurement to the last measured completion."""
        if self.last_finish is None:
            return 0.0
        return max(0.0, self.last_finish - self.measure_start)

    def completion_span(self) -> float:
        """Seconds from the first to the last measured completion."""
        if self.first_finish is None or self.last_finish is None:
            return 0.0
        return self.last_finish - self.first_finish

    def throughput(self) -> float:
        """Successful requests per second: the completion rate times the success share.

        n completions span n - 1 intervals, so the rate is (n - 1) / (last - first); dividing n
        by the whole window instead would charge one latency and one interval to every run.
        """
        span, done = self.completion_span(), self.completed
        if done < 2 or span <= 0:
            return 0.0
        return (done - 1) / span * self.total.ok / done

    def timeseries(self) -> list[dict[str, Any]]:
        """One row per second of the measured window (seconds with nothing are kept as zeros)."""
        if not self.seconds:
            return []
        rows = []
        for second in range(max(self.seconds) + 1):
            bucket = self.seconds.get(second, SecondBucket())
            lat = bucket.latency
            rows.append(
                {
                    "t": second,
                    "ok": bucket.ok,
                    "errors": bucket.errors,
                    "late_starts": bucket.late_starts,
                    "p50_ms": round(lat.percentile_ms(50), 3),
                    "p95_ms": round(lat.percentile_ms(95), 3),
                    "p99_ms": round(lat.percentile_ms(99), 3),
                    "max_ms": round(lat.max_ms(), 3),
                }
            )
        return rows
