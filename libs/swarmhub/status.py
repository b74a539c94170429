"""The live one-line status of a cluster, and the task figures `swarmhub status` shows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class StatusLine:
    """Polls $SRV.STATS over its own event loop and renders one line."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.client: Any = None
        self.last: tuple[float, int] | None = None

    async def _poll(self) -> str:
        from swarmhub.client import SwarmClient

        if self.client is None:
            self.client = await SwarmClient.connect(
                self.url, name="swarmhub-status", reconnect=True
            )
        stats = await self.client.discover("STATS", wait=0.3)
        return render(stats, self._rate)

    def _rate(self, done: int) -> float:
        """Results per second since the last poll."""
        now = time.monotonic()
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = max(0.0, (done - self.last[1]) / (now - self.last[0]))
        self.last = (now, done)
        return rate

    def poll(self) -> str:
        """One rendered status line (never raises)."""
        try:
            return self.loop.run_until_complete(self._poll())
        except Exception as exc:
            self.client = None
            return f"status unavailable: {exc}"

    def close(self) -> None:
        """Close the connection and the loop."""
        if self.client is not None:
            try:
                self.loop.run_until_complete(self.client.close())
            except Exception:
                pass
        self.loop.close()


def tasks_summary(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures over every router's $SRV.STATS: results by status, P95 of the last minute, in
    flight, and the backlog (each router reads the same stream: the largest figure is it)."""
    routers = [st.get("data") or {} for st in stats if st.get("name") == "task-router"]
    by_status: dict[str, int] = {}
    for data in routers:
        for status, count in (data.get("by_status") or {}).items():
            by_status[status] = by_status.get(status, 0) + int(count)
    p95s = [d["p95_ms"] for d in routers if d.get("p95_ms") is not None]
    backlogs = [d.get("backlog") or {} for d in routers]
    return {
        "routers": len(routers),
        "agents": max((int(d.get("agents", 0)) for d in routers), default=0),
        "by_status": by_status,
        "done": sum(by_status.values()),
        "p95_ms": max(p95s) if p95s else None,
        "p95_window_s": max((d.get("p95_window_s", 0) for d in routers), default=0),
        "in_flight": sum(int(d.get("in_flight", 0)) for d in routers),
        "waiting": max((int(b.get("waiting", 0)) for b in backlogs), default=0),
        "oldest_age_s": max((float(b.get("oldest_age_s", 0)) for b in backlogs), default=0.0),
    }


def render(stats: list[dict[str, Any]], rate_of: Callable[[int], float]) -> str:
    """The one status line of `swarmhub up`."""
    tasks = tasks_summary(stats)
    workers = sum(1 for st in stats if st.get("name") == "agent-worker")
    ok = tasks["by_status"].get("succeeded", 0)
    rate = rate_of(tasks["done"])
    p95 = f"{tasks['p95_ms']:.1f} ms" if tasks["p95_ms"] is not None else "-"
    return (
        f"agents: {tasks['agents']}  workers: {workers}  routers: {tasks['routers']}  "
        f"succeeded: {ok}  not: {tasks['done'] - ok}  results/s: {rate:.1f}  "
        f"p95 (1 min): {p95}  waiting: {tasks['waiting']}"
    )
