"""The router's live view of the agent registry, and agent selection."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Iterator

from swarmhub import subjects
from swarmhub.schemas import AgentRecord
from swarmhub.waits import Wakeup

NORMAL_RANK = subjects.LANES.index(subjects.DEFAULT_LANE)
SAMPLE = 4
"""Agents with room looked at per pick in a large swarm (the power of a few random choices)."""
SCAN_UP_TO = 16
"""Up to this many agents with room, every one is looked at (the least loaded wins outright)."""
SUSPEND_UNREACHABLE = 2.0
"""Seconds an agent that nobody answered as gets no new work (less than a registry expiry)."""


class RandomSet:
    """A set of agent ids with O(1) add, discard and random sampling."""

    def __init__(self) -> None:
        self._items: list[str] = []
        self._at: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def add(self, item: str) -> None:
        """Add `item` (no-op if present)."""
        if item not in self._at:
            self._at[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: str) -> None:
        """Remove `item` if present, moving the last one into its place."""
        index = self._at.pop(item, None)
        if index is None:
            return
        last = self._items.pop()
        if index < len(self._items):
            self._items[index] = last
            self._at[last] = index

    def sample(self, k: int) -> list[str]:
        """Up to `k` distinct items chosen at random."""
        return random.sample(self._items, k) if k < len(self._items) else list(self._items)


class AgentView:
    """Live agents (from the KV watch), indexed by capability, plus this router's load on each."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.agents: dict[str, AgentRecord] = {}
        self.by_capability: dict[str, dict[str, AgentRecord]] = {}
        self.in_flight: dict[str, int] = {}
        # Agents with a free slot, by capability: picking costs the same at 10 or 1,000 agents.
        self.free: dict[str, RandomSet] = {}
        # Slots of the live agents offering each capability, and attempts running per capability.
        self.capacity_of: dict[str, int] = {}
        self.running: dict[str, int] = {}
        # Agents that did not answer a dispatch (no responders), until when: out of the free sets.
        self.suspended: dict[str, float] = {}
        # Waiters per priority lane, most urgent first: waking them in that order lets the
        # waiters of a more urgent lane take a freed agent slot before those of a less urgent one.
        self._changed = [Wakeup() for _ in subjects.LANES]

    def _notify(self) -> None:
        """Wake everyone waiting for an agent or a free slot, most urgent lane first."""
        for waiters in self._changed:
            waiters.set()

    def upsert(self, record: AgentRecord) -> None:
        """An agent appeared or changed."""
        self._unindex(record.agent_id)
        self.agents[record.agent_id] = record
        if record.state == "up":
            for capability in record.capabilities:
                self.by_capability.setdefault(capability, {})[record.agent_id] = record
                self.capacity_of[capability] = self.capacity_of.get(capability, 0) + record.capacity
            self._room_changed(record.agent_id)
        self._notify()

    def remove(self, agent_id: str) -> None:
        """An agent left or expired."""
        self._unindex(agent_id)
        self.agents.pop(agent_id, None)
        self.suspended.pop(agent_id, None)
        self._notify()

    def _unindex(self, agent_id: str) -> None:
        old = self.agents.get(agent_id)
        if old is None:
            return
        for capability in old.capabilities:
            holders = self.by_capability.get(capability)
            if holders is not None and holders.pop(agent_id, None) is not None:
                _uncount(self.capacity_of, capability, old.capacity)
                if not holders:
                    del self.by_capability[capability]
            free = self.free.get(capability)
            if free is not None:
                free.discard(agent_id)
                if not free:
                    del self.free[capability]

    def suspend(self, agent_id: str, seconds: float = SUSPEND_UNREACHABLE) -> None:
        """Pick no work for an agent that nobody answers as (killed, not yet expired) for a while;
        one that lives gets work again after `seconds`, one that died expires meanwhile."""
        self.suspended[agent_id] = self.clock() + seconds
        self._room_changed(agent_id)
        asyncio.get_running_loop().call_later(seconds, self._resume, agent_id)

    def _resume(self, agent_id: str) -> None:
        until = self.suspended.get(agent_id)
        if until is not None and until <= self.clock():
            del self.suspended[agent_id]
            self._room_changed(agent_id)
            self._notify()

    def _room_changed(self, agent_id: str) -> None:
        """Put a live agent in, or take it out of, the free sets of its capabilities."""
        record = self.agents.get(agent_id)
        if record is None or record.state != "up":
            return
        if self.in_flight.get(agent_id, 0) < record.capacity and agent_id not in self.suspended:
            for capability in record.capabilities:
                self.free.setdefault(capability, RandomSet()).add(agent_id)
        else:
            for capability in record.capabilities:
                free = self.free.get(capability)
                if free is not None:
                    free.discard(agent_id)
                    if not free:
                        del self.free[capability]

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
        if (
            agent is None
            or self.in_flight.get(agent_id, 0) >= agent.capacity
            or agent_id in self.suspended
        ):
            return None
        return agent if allowed is None or allowed(agent_id) else None

    def pick(
        self,
        capability: str,
        exclude: set[str],
        affinity: str | None = None,
        allowed: Callable[[str], bool] | None = None,
        penalty: Callable[[str], float] | None = None,
    ) -> AgentRecord | None:
        """A live agent with `capability` and a free slot, preferring those not in `exclude`;
        `penalty` (>= 1, e.g. from recent failures) makes an agent look that much more loaded.

        With few agents free, every one is looked at; with many, a few random ones, so the cost
        stays flat as the swarm grows (the full look remains for affinity keys, and for when
        every agent sampled was tried or refused by its breaker).
        """
        free = self.free.get(capability)
        if not free:
            return None
        if not affinity and len(free) > SCAN_UP_TO:
            sampled = [self.agents[i] for i in free.sample(SAMPLE)]
            fresh = [
                a
                for a in sampled
                if a.agent_id not in exclude and (allowed is None or allowed(a.agent_id))
            ]
            if fresh:
                return self._least_loaded(fresh, capability, penalty)
        candidates = [self.agents[i] for i in free if allowed is None or allowed(i)]
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
        return self._least_loaded(pool, capability, penalty)

    def _least_loaded(
        self,
        pool: list[AgentRecord],
        capability: str,
        penalty: Callable[[str], float] | None = None,
    ) -> AgentRecord:
        """The agent of `pool` that this task loads least, weighed by its proficiency: the
        share of its capacity in use once it takes the task, over how good it is at
        `capability` (so among equals the least loaded, and an idle better agent first)."""
        load = self.in_flight

        def cost(a: AgentRecord) -> float:
            share = (load.get(a.agent_id, 0) + 1) / a.capacity
            weighed = share / a.proficiency.get(capability, 1.0)
            return weighed * penalty(a.agent_id) if penalty is not None else weighed

        costs = [cost(a) for a in pool]
        least = min(costs)
        best = [a for a, c in zip(pool, costs, strict=True) if c == least]
        return best[0] if len(best) == 1 else random.choice(best)

    def capability_full(self, capability: str, share: float) -> bool:
        """Whether `capability`'s attempts hold `share` of the slots of the agents offering it
        (at least one slot is always allowed), so that it must wait for one of its own to end."""
        if share >= 1.0:
            return False
        allowed = max(1, int(self.capacity_of.get(capability, 0) * share))
        return self.running.get(capability, 0) >= allowed

    def acquire(self, agent_id: str, capability: str | None = None) -> None:
        """Count a dispatch of `capability` to `agent_id`."""
        if capability is not None:
            self.running[capability] = self.running.get(capability, 0) + 1
        taken = self.in_flight.get(agent_id, 0) + 1
        self.in_flight[agent_id] = taken
        record = self.agents.get(agent_id)
        if record is not None and taken == record.capacity:  # only the last slot changes sets
            self._room_changed(agent_id)

    def release(self, agent_id: str, capability: str | None = None) -> None:
        """Uncount a dispatch and wake waiters."""
        if capability is not None:
            _uncount(self.running, capability)
        left = _uncount(self.in_flight, agent_id)
        record = self.agents.get(agent_id)
        if record is not None and left == record.capacity - 1:  # a full agent has room again
            self._room_changed(agent_id)
        self._notify()

    async def wait_for_change(self, timeout: float, rank: int = NORMAL_RANK) -> None:
        """Wait until the registry or a slot changes, or `timeout` passes.

        `rank` is the waiter's lane (0 = critical): more urgent lanes are woken first.
        """
        await self._changed[rank].wait(timeout)


def _uncount(counts: dict[str, int], key: str, n: int = 1) -> int:
    """Take `n` from `counts[key]`, dropping the key once nothing is left; what is left."""
    left = counts.get(key, n) - n
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
    return left
