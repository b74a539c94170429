"""The router's live view of the agent registry, and agent selection."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable

from swarmhub.schemas import AgentRecord


class AgentView:
    """Live agents (from the KV watch) plus this router's own in-flight count per agent."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.in_flight: dict[str, int] = {}
        self.changed = asyncio.Condition()

    async def notify(self) -> None:
        """Wake everyone waiting for an agent or a free slot."""
        async with self.changed:
            self.changed.notify_all()

    async def upsert(self, record: AgentRecord) -> None:
        """An agent appeared or changed."""
        self.agents[record.agent_id] = record
        await self.notify()

    async def remove(self, agent_id: str) -> None:
        """An agent left or expired."""
        self.agents.pop(agent_id, None)
        await self.notify()

    def has_capability(self, capability: str) -> bool:
        """Whether any live agent offers `capability` (at any load)."""
        return any(capability in a.capabilities and a.state == "up" for a in self.agents.values())

    def pick(
        self,
        capability: str,
        exclude: set[str],
        affinity: str | None = None,
        allowed: Callable[[str], bool] | None = None,
    ) -> AgentRecord | None:
        """A live agent with `capability` and a free slot, preferring those not in `exclude`."""
        candidates = [
            a
            for a in self.agents.values()
            if capability in a.capabilities
            and a.state == "up"
            and self.in_flight.get(a.agent_id, 0) < a.capacity
            and (allowed is None or allowed(a.agent_id))
        ]
        fresh = [a for a in candidates if a.agent_id not in exclude]
        pool = fresh or candidates
        if not pool:
            return None
        if affinity:
            # Rendezvous hashing keeps one affinity key on one agent while it lives.
            return max(
                pool,
                key=lambda a: hashlib.blake2b(f"{affinity}:{a.agent_id}".encode()).digest(),
            )
        least = min(self.in_flight.get(a.agent_id, 0) / a.capacity for a in pool)
        best = [a for a in pool if self.in_flight.get(a.agent_id, 0) / a.capacity == least]
        return random.choice(best)

    def acquire(self, agent_id: str) -> None:
        """Count a dispatch to `agent_id`."""
        self.in_flight[agent_id] = self.in_flight.get(agent_id, 0) + 1

    async def release(self, agent_id: str) -> None:
        """Uncount a dispatch and wake waiters."""
        left = self.in_flight.get(agent_id, 1) - 1
        if left <= 0:
            self.in_flight.pop(agent_id, None)
        else:
            self.in_flight[agent_id] = left
        await self.notify()

    async def wait_for_change(self, timeout: float) -> None:
        """Wait until the registry or a slot changes, or `timeout` passes."""
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=max(0.0, timeout))
            except TimeoutError:
                pass
