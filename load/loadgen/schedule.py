"""Arrival schedules: when each open-loop request is due, and the rate steps of --find-max."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def planned_requests(rate: float, warmup: float, duration: float | None, count: int | None) -> int:
    """How many requests an open-loop run sends: the warm-up's share plus the measured part."""
    if rate <= 0:
        raise ValueError("The arrival rate must be above 0 requests per second.")
    warm = math.ceil(rate * warmup)
    if count is not None:
        return warm + count
    if duration is None:
        raise ValueError("Give either a duration or a count.")
    return warm + math.ceil(rate * duration)


def intended_offset(seq: int, rate: float) -> float:
    """Seconds after the run's start at which request number `seq` (from 0) is due."""
    return seq / rate


def measure_start_offset(rate: float, warmup: float) -> float:
    """Seconds after the run's start at which the first measured request is due."""
    return intended_offset(math.ceil(rate * warmup), rate)


@dataclass
class RateStep:
    """One step of a rate search and whether it held the target."""

    rate: float
    passed: bool


@dataclass
class RateSearch:
    """Geometric ramp until a step fails, then bisection; at most `max_steps` steps in all."""

    start: float
    factor: float = 1.5
    max_steps: int = 8
    max_rate: float = 100_000.0
    resolution: float = 0.05
    steps: list[RateStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.start <= 0:
            raise ValueError("The starting rate must be above 0 requests per second.")
        if self.factor <= 1:
            raise ValueError("The step factor must be above 1.")
        if self.max_steps < 1:
            raise ValueError("At least one step is needed.")

    def best(self) -> float | None:
        """The highest rate that held the target so far, if any."""
        passed = [s.rate for s in self.steps if s.passed]
        return max(passed) if passed else None

    def _lowest_failure(self) -> float | None:
        failed = [s.rate for s in self.steps if not s.passed]
        return min(failed) if failed else None

    def next_rate(self) -> float | None:
        """The next rate to try, or None when the search is over."""
        if len(self.steps) >= self.max_steps:
            return None
        if not self.steps:
            return self.start
        best, failure = self.best(), self._lowest_failure()
        if failure is None:
            assert best is not None
            rate = best * self.factor
            return rate if rate <= self.max_rate else None
        if best is None:
            return None  # even the starting rate missed the target
        if (failure - best) / best <= self.resolution:
            return None
        return (best + failure) / 2

    def report(self, rate: float, passed: bool) -> None:
        """Record the outcome of the step at `rate`."""
        self.steps.append(RateStep(rate, passed))
