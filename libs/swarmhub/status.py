"""The live one-line status of a cluster: agents alive, tasks done, tasks/s, P95."""

from __future__ import annotations

import asyncio
import time
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
        routers = [s for s in stats if s.get("name") == "task-router"]
        workers = [s for s in stats if s.get("name") == "agent-worker"]
        done = sum(int(s.get("data", {}).get("completed", 0)) for s in routers)
        p95s = [s["data"]["p95_ms"] for s in routers if s.get("data", {}).get("p95_ms") is not None]
        agents = max((int(s.get("data", {}).get("agents", 0)) for s in routers), default=0)
        now = time.monotonic()
        rate = 0.0
        if self.last is not None and now > self.last[0]:
            rate = max(0.0, (done - self.last[1]) / (now - self.last[0]))
        self.last = (now, done)
        p95 = f"{max(p95s):.1f} ms" if p95s else "-"
        return (
            f"agents alive: {agents}  workers: {len(workers)}  routers: {len(routers)}  "
            f"tasks done: {done}  tasks/s: {rate:.1f}  p95: {p95}"
        )

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
