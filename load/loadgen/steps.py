"""The steps of `bench --baseline` (the same for the raw pipeline and SwarmHub), their figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from swarmhub.loadgen.config import LoadConfig
from swarmhub.loadgen.drivers import DriveStats
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.scenarios import ScenarioConfig
from swarmhub.loadgen.thresholds import Thresholds

CPU_CONCURRENCY = 64  # CPU per task is headlined at this many in flight


@dataclass(frozen=True)
class Step:
    """One measured step: a closed loop with `concurrency` in flight, or an open loop at `rate`."""

    concurrency: int | None = None
    rate: float | None = None
    seconds: float = 5.0
    warmup: float = 1.0

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.rate is None):
            raise ValueError("A step is either closed (a concurrency) or open (a rate).")
        if self.seconds <= 0 or self.warmup < 0:
            raise ValueError("A step needs positive seconds and a warm-up of 0 or more.")

    @property
    def name(self) -> str:
        """A short key: `closed-64` or `open-1000`."""
        if self.concurrency is not None:
            return f"closed-{self.concurrency}"
        return f"open-{self.rate:g}"

    @property
    def label(self) -> str:
        """How the table names the step."""
        if self.concurrency is not None:
            return f"closed, {self.concurrency} in flight"
        return f"open, {self.rate:g}/s"

    def load_config(self, url: str, traffic: ScenarioConfig) -> LoadConfig:
        """The LoadConfig that runs this step's `task` traffic (thresholds off, no progress)."""
        return LoadConfig(
            url=url,
            scenario="task",
            rate=self.rate,
            concurrency=self.concurrency,
            duration=self.seconds,
            warmup=self.warmup,
            progress=False,
            traffic=traffic,
            thresholds=Thresholds(min_throughput=0.0),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the raw producer process is sent)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        """The step `as_dict` described."""
        return cls(
            concurrency=data.get("concurrency"),
            rate=data.get("rate"),
            seconds=float(data["seconds"]),
            warmup=float(data["warmup"]),
        )


def baseline_steps(
    concurrencies: Sequence[int], rate: float, seconds: float, warmup: float
) -> list[Step]:
    """Closed loops at each concurrency, then the open loop at `rate`."""
    steps = [Step(concurrency=c, seconds=seconds, warmup=warmup) for c in concurrencies]
    return [*steps, Step(rate=rate, seconds=seconds, warmup=warmup)]


def cpu_step(steps: Sequence[Step]) -> Step:
    """The step CPU per task is headlined at: 64 in flight, else the busiest closed loop."""
    closed = [s for s in steps if s.concurrency is not None]
    for step in closed:
        if step.concurrency == CPU_CONCURRENCY:
            return step
    return max(closed, key=lambda s: s.concurrency or 0) if closed else steps[0]


def figures(recorder: Recorder, stats: DriveStats) -> dict[str, Any]:
    """What a step reports, from its recorder and driver stats (the raw producer's side)."""
    completed = recorder.completed
    return {
        "throughput_per_s": round(recorder.throughput(), 2),
        "latency_ms": recorder.total.latency.summary(),
        "measured": completed,
        "ok": recorder.total.ok,
        "errors": completed - recorder.total.ok,
        "errors_by_code": dict(sorted(recorder.total.errors.items())),
        "error_samples": dict(recorder.error_samples),
        "late_starts": recorder.late_starts,
        "tasks_done": recorder.warmup_done + completed - stats.cancelled,
    }


def figures_from_report(report: dict[str, Any]) -> dict[str, Any]:
    """The same figures out of a full `swarmhub.loadgen.runner.execute` report (SwarmHub's side)."""
    req = report["requests"]
    return {
        "throughput_per_s": report["throughput_per_s"],
        "latency_ms": report["latency_ms"],
        "measured": req["measured"],
        "ok": req["ok"],
        "errors": req["errors"],
        "errors_by_code": report["errors_by_code"],
        "error_samples": report["error_samples"],
        "late_starts": report["late_starts"],
        "tasks_done": req["warmup"] + req["measured"] - req["cancelled"],
    }
