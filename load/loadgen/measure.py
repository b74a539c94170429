"""Runs the baseline steps against one side, with CPU per task per process and RSS idle vs peak.

CPU is read around each whole step (its warm-up included) and divided by every task the step
finished, warm-up included, so no task's work is split across the edge of the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

from swarmhub.loadgen.footprint import RssTracker, cpu_per_task, cpu_used, take_cpu
from swarmhub.loadgen.resources import PidSource
from swarmhub.loadgen.steps import Step, cpu_step

RSS_INTERVAL_S = 0.25
StepRunner = Callable[[Step, int], Awaitable[dict[str, Any]]]


def step_line(side: str, step: Step, figures: dict[str, Any]) -> str:
    """One progress line for a finished step."""
    lat = figures["latency_ms"]
    cpu = figures["cpu"]["total_us_per_task"]
    cpu_text = f"{cpu:.0f} µs/task" if cpu is not None else "-"
    return (
        f"[baseline] {side:<8} {step.label:<20} {figures['throughput_per_s']:9.1f} tasks/s  "
        f"P50 {lat['p50']:.2f} P95 {lat['p95']:.2f} P99 {lat['p99']:.2f} ms  "
        f"errors {figures['errors']}  CPU {cpu_text}"
    )


async def measured_steps(
    side: str,
    steps: Sequence[Step],
    pids: PidSource,
    generators: Collection[str],
    run_one: StepRunner,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every step through `run_one`; figures per step plus CPU per task and RSS.

    `pids()` names every process to account for; those in `generators` drive the load and are
    reported apart from the totals.
    """
    rss = RssTracker(pids, generators)
    rss.mark_idle()
    stop = asyncio.Event()
    budget = sum(s.warmup + s.seconds for s in steps) + 60.0 * len(steps) + 60.0
    sampling = asyncio.create_task(rss.run(stop, RSS_INTERVAL_S, budget))
    results: dict[str, Any] = {}
    try:
        for index, step in enumerate(steps):
            before = take_cpu(pids())
            figures = await run_one(step, index)
            after = take_cpu(pids())
            used = cpu_used(before, after)
            figures["cpu"] = cpu_per_task(used, figures["tasks_done"], generators)
            results[step.name] = figures
            if progress:
                print(step_line(side, step, figures), file=sys.stderr, flush=True)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    headline = cpu_step(steps).name
    return {
        "processes": dict(sorted(pids().items())),
        "load_generators": sorted(generators),
        "steps": results,
        "cpu_step": headline,
        "cpu_us_per_task": results[headline]["cpu"],
        "rss_mb": rss.summary(),
    }
