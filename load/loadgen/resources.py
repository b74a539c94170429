"""Resource sampling with psutil: RSS and CPU% of every cluster process, and the load average."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from swarmhub.loadgen.slope import growth_per_hour

MB = 1e6
PidSource = Callable[[], dict[str, int]]


@dataclass
class Sample:
    """One round of sampling, `t` seconds after the run's start."""

    t: float
    rss_mb: dict[str, float]
    cpu_pct: dict[str, float]
    load1: float
    self_rss_mb: float
    self_cpu_pct: float

    @property
    def total_rss_mb(self) -> float:
        """Summed RSS of the sampled cluster processes."""
        return sum(self.rss_mb.values())

    @property
    def total_cpu_pct(self) -> float:
        """Summed CPU% of the sampled cluster processes (100 = one core)."""
        return sum(self.cpu_pct.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "t": round(self.t, 3),
            "total_rss_mb": round(self.total_rss_mb, 2),
            "total_cpu_pct": round(self.total_cpu_pct, 1),
            "load1": round(self.load1, 2),
            "self_rss_mb": round(self.self_rss_mb, 2),
            "self_cpu_pct": round(self.self_cpu_pct, 1),
            "rss_mb": {k: round(v, 2) for k, v in self.rss_mb.items()},
            "cpu_pct": {k: round(v, 1) for k, v in self.cpu_pct.items()},
        }


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


@dataclass
class ResourceSampler:
    """Samples the processes `pids()` names (refreshed each round) plus the load generator."""

    pids: PidSource
    interval: float = 1.0
    start: float = field(default_factory=time.perf_counter)
    samples: list[Sample] = field(default_factory=list)
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _self: psutil.Process = field(default_factory=psutil.Process)

    def _proc(self, pid: int) -> psutil.Process | None:
        proc = self._procs.get(pid)
        if proc is None:
            try:
                proc = psutil.Process(pid)
                proc.cpu_percent(None)  # the first reading only sets the baseline
            except psutil.Error:
                return None
            self._procs[pid] = proc
        return proc

    def prime(self) -> None:
        """Set the CPU baselines so that the first sample reads a real percentage."""
        for pid in self.pids().values():
            self._proc(pid)
        self._self.cpu_percent(None)

    def sample(self) -> Sample:
        """Take one sample now."""
        rss: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for name, pid in self.pids().items():
            proc = self._proc(pid)
            if proc is None:
                continue
            try:
                with proc.oneshot():
                    rss[name] = proc.memory_info().rss / MB
                    cpu[name] = proc.cpu_percent(None)
            except psutil.Error:
                self._procs.pop(pid, None)
        sample = Sample(
            t=time.perf_counter() - self.start,
            rss_mb=rss,
            cpu_pct=cpu,
            load1=load_average(),
            self_rss_mb=self._self.memory_info().rss / MB,
            self_cpu_pct=self._self.cpu_percent(None),
        )
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event, max_seconds: float) -> None:
        """Sample every `interval` until `stop` is set or `max_seconds` have passed."""
        self.prime()
        deadline = time.perf_counter() + max_seconds
        while not stop.is_set() and time.perf_counter() < deadline:
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                self.sample()

    def latest(self) -> Sample | None:
        """The most recent sample, if any."""
        return self.samples[-1] if self.samples else None

    def summary(self, since: float) -> dict[str, Any]:
        """Per-process and total figures of the samples taken `since` seconds after the start."""
        window = [s for s in self.samples if s.t >= since]
        out: dict[str, Any] = {
            "samples": len(window),
            "interval_s": self.interval,
            "processes": {},
            "window_s": round(window[-1].t - window[0].t, 2) if len(window) > 1 else 0.0,
        }
        if not window:
            return out
        names = sorted({n for s in window for n in s.rss_mb})
        for name in names:
            points = [
                (s.t, s.rss_mb[name], s.cpu_pct.get(name, 0.0)) for s in window if name in s.rss_mb
            ]
            fit = growth_per_hour([p[0] for p in points], [p[1] for p in points])
            out["processes"][name] = {
                "rss_mb_start": round(points[0][1], 2),
                "rss_mb_end": round(points[-1][1], 2),
                "rss_mb_max": round(max(p[1] for p in points), 2),
                "cpu_pct_mean": round(sum(p[2] for p in points) / len(points), 1),
                "cpu_pct_max": round(max(p[2] for p in points), 1),
                "mem_growth_mb_h": round(fit.slope, 2) if fit else None,
            }
        totals = [s.total_rss_mb for s in window]
        # The growth threshold judges the SwarmHub services. nats-server grows by design while
        # results accumulate within their TTL, so its slope is reported on its own.
        services = [n for n in names if not is_nats(n)]
        service_totals = [sum(s.rss_mb.get(n, 0.0) for n in services) for s in window]
        fit = growth_per_hour([s.t for s in window], service_totals) if services else None
        nats = [n for n in names if is_nats(n)]
        nats_totals = [sum(s.rss_mb.get(n, 0.0) for n in nats) for s in window]
        nats_fit = growth_per_hour([s.t for s in window], nats_totals) if nats else None
        out.update(
            {
                "total_rss_mb_start": round(totals[0], 2),
                "total_rss_mb_end": round(totals[-1], 2),
                "total_rss_mb_max": round(max(totals), 2),
                "total_cpu_pct_mean": round(sum(s.total_cpu_pct for s in window) / len(window), 1),
                "total_cpu_pct_max": round(max(s.total_cpu_pct for s in window), 1),
                "mem_growth_mb_h": round(fit.slope, 3) if fit else None,
                "mem_growth_stderr_mb_h": round(fit.stderr, 3) if fit else None,
                "mem_growth_scope": "services (nats-server excluded)",
                "nats_mem_growth_mb_h": round(nats_fit.slope, 3) if nats_fit else None,
                "load_avg_max": round(max(s.load1 for s in window), 2),
                "load_avg_mean": round(sum(s.load1 for s in window) / len(window), 2),
                "loadgen_cpu_pct_mean": round(sum(s.self_cpu_pct for s in window) / len(window), 1),
                "loadgen_cpu_pct_max": round(max(s.self_cpu_pct for s in window), 1),
                "loadgen_rss_mb_max": round(max(s.self_rss_mb for s in window), 2),
            }
        )
        return out


def is_nats(name: str) -> bool:
    """Whether a sampled process is a nats-server (its memory follows stored data)."""
    return "nats" in name
