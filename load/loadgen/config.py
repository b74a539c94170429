"""One validated description of a load run."""

from __future__ import annotations

from dataclasses import dataclass, field

from swarmhub.loadgen.scenarios import NAMES, ScenarioConfig
from swarmhub.loadgen.thresholds import Thresholds


@dataclass(frozen=True)
class LoadConfig:
    """What to send, how to pace it, how long, and what it must hold."""

    url: str
    scenario: str = "task"
    rate: float | None = None
    concurrency: int | None = None
    duration: float | None = None
    count: int | None = None
    warmup: float = 2.0
    max_in_flight: int = 10_000
    late_ms: float = 5.0
    sample_interval: float = 1.0
    max_seconds: float = 3600.0
    progress: bool = True
    traffic: ScenarioConfig = field(default_factory=ScenarioConfig)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def __post_init__(self) -> None:
        if self.scenario not in NAMES:
            raise ValueError(
                f"Unknown scenario {self.scenario!r}. Choose one of {', '.join(NAMES)}."
            )
        if (self.rate is None) == (self.concurrency is None):
            raise ValueError("Give exactly one of --rate (open loop) and --concurrency (closed).")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("--rate must be above 0 requests per second.")
        if self.concurrency is not None and not 1 <= self.concurrency <= 100_000:
            raise ValueError("--concurrency must be between 1 and 100000.")
        if (self.duration is None) == (self.count is None):
            raise ValueError("Give exactly one of --duration and --count.")
        if self.duration is not None and not 0 < self.duration <= self.max_seconds:
            raise ValueError(f"--duration must be above 0 and at most {self.max_seconds:g} s.")
        if self.count is not None and self.count < 1:
            raise ValueError("--count must be at least 1.")
        if self.warmup < 0:
            raise ValueError("--warmup cannot be negative.")
        if self.max_in_flight < 1:
            raise ValueError("--max-in-flight must be at least 1.")
        if self.sample_interval <= 0:
            raise ValueError("--sample-interval must be above 0 seconds.")

    @property
    def mode(self) -> str:
        """`open` (constant arrival rate) or `closed` (fixed number in flight)."""
        return "open" if self.rate is not None else "closed"

    def expected_seconds(self) -> float:
        """How long the sending part should take, warm-up included."""
        if self.duration is not None:
            return self.warmup + self.duration
        if self.rate is not None and self.count is not None:
            return self.warmup + self.count / self.rate
        return self.max_seconds

    def drain_timeout(self) -> float:
        """How long in-flight requests may take to finish once sending stopped."""
        return self.traffic.timeout + 5.0
