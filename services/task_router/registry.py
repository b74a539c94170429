"""The router's live view of the agent registry, and agent selection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable

from swarmhub.schemas import AgentRecord


class AgentView:
    """Live agents (from the KV watch), indexed by capability, plus this router's load on each."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.by_capability: dict[str, dict[str, AgentRecord]] = {}
        self.in_flight: dict[str, int] = {}
        self._changed: asyncio.Future[None] | None = None

    def _notify(self) -> None:
        """Wake everyone waiting for an agent or a free slot (free when nobody waits)."""
        if self._changed is not None:
            if not self._changed.done():
                self._changed.set_result(None)
            self._changed = None

    def upsert(self, record: AgentRecord) -> None:
        """An agent appeared or changed."""
        self._unindex(record.agent_id)
        self.agents[record.agent_id] = record
        if record.state == "up":
            for capability in record.capabilities:
                self.by_capability.setdefault(capability, {})[record.agent_id] = record
        self._notify()

    def remove(self, agent_id: str) -> None:
        """An agent left or expired."""
        self._unindex(agent_id)
        self.agents.pop(agent_id, None)
        self._notify()

    def _unindex(self, agent_id: str) -> None:
        old = self.agents.get(agent_id)
        if old is None:
            return
        for capability in old.capabilities:
            holders = self.by_capability.get(capability)
            if holders is not None:
                holders.pop(agent_id, None)
                if not holders:
                    del self.by_capability[capability]

    def has_capability(self, capability: str) -> bool:
        """Whether any live agent offers `capability` (at any load)."""
        return capability in self.by_capability

    def pick(
        self,
        capability: str,
        exclude: set[str],
        affinity: str | None = None,
        allowed: Callable[[str], bool] | None = None,
    ) -> AgentRecord | None:
        """A live agent with `capability` and a free slot, preferring those not in `exclude`."""
        holders = self.by_capability.get(capability)
        if not holders:
            return None
        load = self.in_flight
        candidates = [
            a
            for a in holders.values()
            if load.get(a.agent_id, 0) < a.capacity and (allowed is None or allowed(a.agent_id))
        ]
        fresh = [a for a in candidates if a.agent_id not in exclude] if exclude else candidates
        pool = fresh or candidates
        if not pool:
            return None
        if len(pool) == 1:
            return pool[0]
        if affinity:
            # Rendezvous hashing keeps one affinity key on one agent while it lives.
            return max(
                pool,
                key=lambda a: hashlib.blake2b(f"{affinity}:{a.agent_id}".encode()).digest(),
            )
        least = min(load.get(a.agent_id, 0) / a.capacity for a in pool)
        best = [a for a in pool if load.get(a.agent_id, 0) / a.capacity == least]
        return best[0] if len(best) == 1 else random.choice(best)

    def acquire(self, agent_id: str) -> None:
        """Count a dispatch to `agent_id`."""
        self.in_flight[agent_id] = self.in_flight.get(agent_id, 0) + 1

    def release(self, agent_id: str) -> None:
        """Uncount a dispatch and wake waiters."""
        left = self.in_flight.get(agent_id, 1) - 1
        if left <= 0:
            self.in_flight.pop(agent_id, None)
        else:
            self.in_flight[agent_id] = left
        self._notify()

    async def wait_for_change(self, timeout: float) -> None:
        """Wait until the registry or a slot changes, or `timeout` passes."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._changed), timeout=max(0.0, timeout))
