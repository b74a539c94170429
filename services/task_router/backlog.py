"""The task backlog as a router sees it: tasks waiting for a router, held, and the oldest's age."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext

from swarmhub import metrics, subjects
from swarmhub.bus import Bus
from swarmhub.task_router.figures import Backlog

INTERVAL = 5.0
"""Seconds between two looks at the stream: a scrape sees figures at most this old."""


def oldest_age(state: dict[str, Any], now: float) -> float:
    """Seconds since the oldest message of a stream `state` (STREAM.INFO JSON) was stored."""
    if not state.get("messages"):
        return 0.0
    stamp = str(state.get("first_ts") or "")
    # RFC 3339 with up to nanoseconds; Python reads at most microseconds.
    head, dot, frac = stamp.rstrip("Z").partition(".")
    try:
        first = datetime.fromisoformat(f"{head}{dot}{frac[:6]}+00:00").timestamp()
    except ValueError:
        return 0.0
    return max(0.0, now - first)


async def read_backlog(bus: Bus) -> tuple[int, int, float]:
    """Tasks never delivered, delivered but unfinished (over every lane), and the oldest task's
    age in seconds."""
    js: JetStreamContext = bus.js
    pending = ack_pending = 0
    for lane in subjects.LANES:
        consumer = await js.consumer_info(subjects.TASK_STREAM, subjects.lane_consumer(lane))
        pending += consumer.num_pending or 0
        ack_pending += consumer.num_ack_pending or 0
    reply = await bus.nc.request(subjects.stream_info(subjects.TASK_STREAM), b"", timeout=2.0)
    state = json.loads(reply.data).get("state", {})
    return pending, ack_pending, oldest_age(state, time.time())


async def backlog_loop(bus: Bus, log: Any, figures: Backlog) -> None:
    """Keep the backlog gauges and `figures` current; a failed look leaves the last in place."""
    waiting = metrics.TASKS_PENDING.labels("waiting")
    held = metrics.TASKS_PENDING.labels("held")
    while True:
        try:
            pending, ack_pending, age = await read_backlog(bus)
        except Exception as exc:
            log.debug("backlog_read_failed", reason=f"{type(exc).__name__}: {exc}")
        else:
            waiting.set(pending)
            held.set(ack_pending)
            metrics.TASKS_OLDEST_AGE.set(age)
            figures.waiting, figures.held, figures.oldest_age_s = pending, ack_pending, age
        await asyncio.sleep(INTERVAL)
