"""The two ways of pacing requests: open loop (constant arrival rate) and closed loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from swarmhub.errors import ServiceError
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.schedule import intended_offset

clock = time.perf_counter


class Operation(Protocol):
    """What a driver needs of a scenario: the kind of request `seq` and a way to run it."""

    def pick(self, seq: int) -> str:
        """The operation request `seq` performs."""

    async def run(self, kind: str, seq: int) -> None:
        """Perform one operation; raise ServiceError (with its code) when it fails."""


@dataclass
class DriveStats:
    """What the driver itself did, beside the recorded outcomes."""

    sent: int = 0
    cancelled: int = 0
    max_in_flight: int = 0
    schedule_end: float = 0.0


async def perform(
    scenario: Operation, recorder: Recorder, seq: int, intended: float, stats: DriveStats
) -> None:
    """Run request `seq`, due at `intended`, and record how it went."""
    kind = scenario.pick(seq)
    started = clock()
    code: str | None = None
    message = ""
    try:
        await scenario.run(kind, seq)
    except ServiceError as exc:
        code, message = exc.code.value, exc.message
    except asyncio.CancelledError:
        stats.cancelled += 1
        recorder.record(kind, intended, started, clock(), "cancelled", "cut off at the drain limit")
        raise
    except Exception as exc:
        code, message = type(exc).__name__, str(exc)
    recorder.record(kind, intended, started, clock(), code, message)


async def _drain(pending: set[asyncio.Task[None]], timeout: float) -> None:
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=5.0)


async def drive_open(
    scenario: Operation,
    recorder: Recorder,
    *,
    start: float,
    rate: float,
    total: int,
    max_in_flight: int,
    drain_timeout: float,
    stats: DriveStats,
) -> DriveStats:
    """Start request i at `start + i / rate` whatever happened to earlier ones.

    A request that cannot start on time (the loop was busy, or `max_in_flight` were pending)
    starts late, and its latency still counts from when it was due.
    """
    pending: set[asyncio.Task[None]] = set()
    for seq in range(total):
        intended = start + intended_offset(seq, rate)
        delay = intended - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        elif seq % 64 == 0:
            await asyncio.sleep(0)  # behind schedule: still let started requests progress
        while len(pending) >= max_in_flight:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(perform(scenario, recorder, seq, intended, stats))
        pending.add(task)
        task.add_done_callback(pending.discard)
        stats.sent += 1
        stats.max_in_flight = max(stats.max_in_flight, len(pending))
    stats.schedule_end = clock()
    await _drain(pending, drain_timeout)
    return stats


async def drive_closed(
    scenario: Operation,
    recorder: Recorder,
    *,
    concurrency: int,
    measure_start: float,
    end: float | None,
    count: int | None,
    hard_deadline: float,
    drain_timeout: float,
    stats: DriveStats,
) -> DriveStats:
    """Keep `concurrency` requests in flight; each starts when one finishes.

    Latency counts from each request's actual start, so a stall hides the requests that would
    have been sent meanwhile (coordinated omission); use the open loop for honest latency.
    """
    stats.max_in_flight = concurrency
    next_seq = 0
    measured = 0

    async def worker() -> None:
        nonlocal next_seq, measured
        while True:
            now = clock()
            if now >= hard_deadline or (end is not None and now >= end):
                return
            if count is not None and measured >= count:
                return
            if now >= measure_start:
                measured += 1
            seq, next_seq = next_seq, next_seq + 1
            stats.sent += 1
            await perform(scenario, recorder, seq, clock(), stats)

    workers = {asyncio.create_task(worker()) for _ in range(concurrency)}
    done_by = hard_deadline + drain_timeout - clock()
    _, late = await asyncio.wait(workers, timeout=max(0.0, done_by))
    stats.schedule_end = clock()
    await _drain(late, 0.0)
    return stats
