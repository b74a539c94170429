"""The router's live view of the agent registry, and agent selection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections.abc import Callable

from swarmhub import subjects
from swarmhub.schemas import AgentRecord

NORMAL_RANK = subjects.LANES.index(subjects.DEFAULT_LANE)


class AgentView:
    """Live agents (from the KV watch), indexed by capability, plus this router's load on each."""

    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.by_capability: dict[str, dict[str, AgentRecord]] = {}
        self.in_flight: dict[str, int] = {}
        # One future per priority lane, most urgent first: waking them in that order lets the
        # waiters of a more urgent lane take a freed agent slot before those of a less urgent one.
        self._changed: list[asyncio.Future[None] | None] = [None] * len(subjects.LANES)

    def _notify(self) -> None:
        """Wake everyone waiting for an agent or a free slot, most urgent lane first."""
        changed = self._changed
        for rank, future in enumerate(changed):
            if future is not None:
                if not future.done():
                    future.set_result(None)
                changed[rank] = None

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

    def has_capability(self, capability: str, agent_id: str | None = None) -> bool:
        """Whether any live agent (or the one named) offers `capability`, at any load."""
        holders = self.by_capability.get(capability)
        if not holders:
            return False
        return agent_id is None or agent_id in holders

    def pinned(
        self, agent_id: str, capability: str, allowed: Callable[[str], bool] | None = None
    ) -> AgentRecord | None:
        """The named agent, if it is live, offers `capability` and has a free slot."""
        agent = self.by_capability.get(capability, {}).get(agent_id)
        if agent is None or self.in_flight.get(agent_id, 0) >= agent.capacity:
            return None
        return agent if allowed is None or allowed(agent_id) else None

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

    async def wait_for_change(self, timeout: float, rank: int = NORMAL_RANK) -> None:
        """Wait until the registry or a slot changes, or `timeout` passes.

        `rank` is the waiter's lane (0 = critical): more urgent lanes are woken first.
        """
        future = self._changed[rank]
        if future is None:
            future = self._changed[rank] = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, timeout))
