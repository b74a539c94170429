"""One load run from start to report: pace, record, sample, judge."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from swarmhub.client import SwarmClient
from swarmhub.config import redact_url
from swarmhub.loadgen.config import LoadConfig
from swarmhub.loadgen.constants import REPORT_VERSION
from swarmhub.loadgen.drivers import DriveStats, Operation, clock, drive_closed, drive_open
from swarmhub.loadgen.progress import progress_line, report_progress
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.resources import PidSource, ResourceSampler
from swarmhub.loadgen.scenarios import build
from swarmhub.loadgen.schedule import measure_start_offset, planned_requests
from swarmhub.loadgen.thresholds import Figures, alert_lines, evaluate, exit_code

LEAD_SECONDS = 0.1  # set-up slack between planning the schedule and its first request


def plan(cfg: LoadConfig, start: float) -> tuple[int, float]:
    """Requests an open loop will send (0 for a closed loop) and when measuring starts."""
    if cfg.rate is not None:
        total = planned_requests(cfg.rate, cfg.warmup, cfg.duration, cfg.count)
        return total, start + measure_start_offset(cfg.rate, cfg.warmup)
    return 0, start + cfg.warmup


async def pace(
    cfg: LoadConfig,
    scenario: Operation,
    recorder: Recorder,
    stats: DriveStats,
    start: float,
    total: int,
) -> None:
    """Drive `scenario` as `cfg` paces it (open or closed loop), from `start` until drained."""
    if cfg.rate is not None:
        await drive_open(
            scenario,
            recorder,
            start=start,
            rate=cfg.rate,
            total=total,
            max_in_flight=cfg.max_in_flight,
            drain_timeout=cfg.drain_timeout(),
            stats=stats,
        )
        return
    assert cfg.concurrency is not None
    measure_start = recorder.measure_start
    end = measure_start + cfg.duration if cfg.duration is not None else None
    await drive_closed(
        scenario,
        recorder,
        concurrency=cfg.concurrency,
        measure_start=measure_start,
        end=end,
        count=cfg.count,
        hard_deadline=start + cfg.max_seconds,
        drain_timeout=cfg.drain_timeout(),
        stats=stats,
    )


async def execute(cfg: LoadConfig, client: SwarmClient, pids: PidSource) -> dict[str, Any]:
    """Run one load as `cfg` describes over `client` and return the full report."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    scenario = build(cfg.scenario, client, cfg.traffic)
    await scenario.setup()
    try:
        start = clock() + LEAD_SECONDS
        total, measure_start = plan(cfg, start)
        recorder = Recorder(measure_start, cfg.late_ms / 1000)
        sampler = ResourceSampler(pids, cfg.sample_interval, start=measure_start)
        stats = DriveStats()
        budget = cfg.expected_seconds() + cfg.drain_timeout() + 10.0
        stop = asyncio.Event()
        background = [asyncio.create_task(sampler.run(stop, budget))]
        if cfg.progress:
            background.append(
                asyncio.create_task(
                    report_progress(
                        stop, lambda now: progress_line(now, recorder, stats, sampler), budget
                    )
                )
            )
        try:
            await pace(cfg, scenario, recorder, stats, start, total)
            sampler.sample()
        finally:
            stop.set()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await scenario.teardown()
    return assemble(cfg, started_at, total, recorder, stats, sampler, scenario.extras())


def assemble(
    cfg: LoadConfig,
    started_at: str,
    planned: int,
    recorder: Recorder,
    stats: DriveStats,
    sampler: ResourceSampler,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """Every figure of a run, judged against the thresholds, as one JSON-ready dict."""
    completed = recorder.completed
    errors = completed - recorder.total.ok
    error_pct = 100.0 * errors / completed if completed else 0.0
    latency = recorder.total.latency.summary()
    resources = sampler.summary(since=0.0)
    figures = Figures(
        throughput=recorder.throughput(),
        p95_ms=latency["p95"] if recorder.total.ok else None,
        error_pct=error_pct if completed else 100.0,
        mem_growth_mb_h=resources.get("mem_growth_mb_h"),
        mem_window_s=float(resources.get("window_s", 0.0)),
        load_avg_max=resources.get("load_avg_max"),
        mem_growth_stderr_mb_h=resources.get("mem_growth_stderr_mb_h") or 0.0,
    )
    verdicts = evaluate(cfg.thresholds, figures)
    traffic = asdict(cfg.traffic)
    return {
        "version": REPORT_VERSION,
        "tool": "swarmhub load",
        "started_at": started_at,
        "url": redact_url(cfg.url),
        "scenario": cfg.scenario,
        "mode": cfg.mode,
        "config": {
            "rate": cfg.rate,
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration,
            "count": cfg.count,
            "warmup_s": cfg.warmup,
            "max_in_flight": cfg.max_in_flight,
            "late_threshold_ms": cfg.late_ms,
            "sample_interval_s": cfg.sample_interval,
            "traffic": traffic,
            "thresholds": asdict(cfg.thresholds),
        },
        "requests": {
            "planned": planned or stats.sent,
            "sent": stats.sent,
            "warmup": recorder.warmup_done,
            "measured": completed,
            "ok": recorder.total.ok,
            "errors": errors,
            "cancelled": stats.cancelled,
            "max_in_flight": stats.max_in_flight,
        },
        "window_s": round(recorder.window(), 3),
        "completion_span_s": round(recorder.completion_span(), 3),
        "throughput_per_s": round(recorder.throughput(), 2),
        "offered_rate_per_s": cfg.rate,
        "error_rate": round(errors / completed, 6) if completed else 0.0,
        "latency_ms": latency,
        "latency_clamped": recorder.total.latency.clamped,
        "start_lag_ms": recorder.start_lag.summary(),
        "late_starts": recorder.late_starts,
        "errors_by_code": dict(sorted(recorder.total.errors.items())),
        "error_samples": recorder.error_samples,
        "operations": {k: v.summary() for k, v in sorted(recorder.ops.items())},
        "scenario_figures": extras,
        "timeseries": recorder.timeseries(),
        "resources": resources,
        "resource_samples": [s.as_dict() for s in sampler.samples],
        "thresholds": [v.as_dict() for v in verdicts],
        "alerts": alert_lines(verdicts),
        "exit_code": exit_code(verdicts),
    }
