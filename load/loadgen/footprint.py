"""What processes cost: CPU seconds between two moments, per task, and RSS idle vs peak."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import psutil

from swarmhub.loadgen.resources import MB, PidSource


@dataclass(frozen=True)
class CpuSnapshot:
    """User + system CPU seconds each named process had used at one moment, and its PID."""

    seconds: dict[str, float]
    pids: dict[str, int]


def take_cpu(pids: dict[str, int]) -> CpuSnapshot:
    """A CpuSnapshot of the named processes (ones that are gone are left out)."""
    seconds: dict[str, float] = {}
    found: dict[str, int] = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[name] = times.user + times.system
        found[name] = pid
    return CpuSnapshot(seconds, found)


def cpu_used(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """CPU seconds each process used between two snapshots (a restarted or gone one is left out)."""
    return {
        name: max(0.0, after.seconds[name] - spent)
        for name, spent in sorted(before.seconds.items())
        if name in after.seconds and after.pids.get(name) == before.pids.get(name)
    }


def _us(seconds: float, tasks: int) -> float | None:
    return round(seconds * 1e6 / tasks, 1) if tasks > 0 else None


def cpu_per_task(
    used: dict[str, float], tasks: int, generators: Collection[str] = ()
) -> dict[str, Any]:
    """CPU µs per task of each process, their total, and the load generators' total apart.

    `used` holds CPU seconds per process over a window in which `tasks` tasks were done; the
    processes named in `generators` drive the load and are kept out of `total_us_per_task`.
    """
    measured = {n: s for n, s in used.items() if n not in generators}
    driving = {n: s for n, s in used.items() if n in generators}
    return {
        "tasks": tasks,
        "cpu_s": {n: round(s, 4) for n, s in sorted(used.items())},
        "us_per_task": {n: _us(s, tasks) for n, s in sorted(used.items())},
        "total_us_per_task": _us(sum(measured.values()), tasks),
        "load_generator_us_per_task": _us(sum(driving.values()), tasks) if driving else None,
        "load_generators": sorted(driving),
    }


@dataclass
class RssTracker:
    """RSS of every process `pids()` names: once while idle, then the peak under load."""

    pids: PidSource
    generators: Collection[str] = ()
    idle_mb: dict[str, float] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    peak_total_mb: float = 0.0
    samples: int = 0

    def rss_now(self) -> dict[str, float]:
        """Current RSS in MB of each named process that is still running."""
        out: dict[str, float] = {}
        for name, pid in self.pids().items():
            try:
                out[name] = psutil.Process(pid).memory_info().rss / MB
            except psutil.Error:
                continue
        return out

    def mark_idle(self) -> None:
        """Record the RSS before any load."""
        self.idle_mb = self.rss_now()

    def sample(self) -> None:
        """Take one sample and keep each process's peak (and the peak of their sum)."""
        now = self.rss_now()
        self.samples += 1
        for name, rss in now.items():
            self.peak_mb[name] = max(rss, self.peak_mb.get(name, 0.0))
        self.peak_total_mb = max(
            self.peak_total_mb, sum(v for n, v in now.items() if n not in self.generators)
        )

    async def run(self, stop: asyncio.Event, interval: float, max_seconds: float) -> None:
        """Sample every `interval` seconds until `stop` is set or `max_seconds` have passed."""
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            self.sample()
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass
        self.sample()

    def summary(self) -> dict[str, Any]:
        """Idle and peak RSS per process, and the totals without the load generators."""
        return {
            "idle_mb": {n: round(v, 2) for n, v in sorted(self.idle_mb.items())},
            "peak_mb": {n: round(v, 2) for n, v in sorted(self.peak_mb.items())},
            "idle_total_mb": round(
                sum(v for n, v in self.idle_mb.items() if n not in self.generators), 2
            ),
            "peak_total_mb": round(self.peak_total_mb, 2),
            "load_generators": sorted(n for n in self.generators if n in self.peak_mb),
            "samples": self.samples,
        }
