"""The once-a-second progress line written to stderr while a run is going."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TextIO

from swarmhub.loadgen.drivers import DriveStats, clock
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.resources import ResourceSampler


def progress_line(
    now: float, recorder: Recorder, stats: DriveStats, sampler: ResourceSampler | None
) -> str:
    """One line: the last full second's outcomes and latency, what is in flight, resources."""
    in_flight = stats.sent - recorder.completed - recorder.warmup_done
    if now < recorder.measure_start:
        head = f"[warm-up {recorder.measure_start - now:4.1f}s left] sent {stats.sent}"
    else:
        second = int(now - recorder.measure_start)
        last = recorder.seconds.get(second - 1)
        ok, err = (last.ok, last.errors) if last else (0, 0)
        lat = last.latency if last else None
        head = (
            f"[{second:4d}s] ok/s {ok:5d} err/s {err:3d} | total ok {recorder.total.ok} "
            f"err {recorder.completed - recorder.total.ok} | "
        )
        if lat is not None and lat.count:
            head += (
                f"p50 {lat.percentile_ms(50):.1f} p95 {lat.percentile_ms(95):.1f} "
                f"p99 {lat.percentile_ms(99):.1f} ms"
            )
        else:
            head += "p50 - p95 - p99 - ms"
    line = f"{head} | in flight {in_flight} late {recorder.late_starts}"
    sample = sampler.latest() if sampler else None
    if sample is not None:
        line += (
            f" | cluster cpu {sample.total_cpu_pct:.0f}% rss {sample.total_rss_mb:.0f} MB"
            f" | loadgen cpu {sample.self_cpu_pct:.0f}% | load {sample.load1:.2f}"
        )
    return line


async def report_progress(
    stop: asyncio.Event,
    line: Callable[[float], str],
    max_seconds: float,
    out: TextIO = sys.stderr,
) -> None:
    """Print `line(now)` every second until `stop` is set or `max_seconds` have passed."""
    deadline = clock() + max_seconds
    while not stop.is_set() and clock() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            print(line(clock()), file=out, flush=True)
