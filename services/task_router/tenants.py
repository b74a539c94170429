"""Per-tenant fairness: how many tasks each tenant (submitting NATS user) holds in one router.

While more than one tenant has tasks waiting or held, a tenant at its cap does not take another
slot: its next task is handed back to the stream with a delay (a nak, never a dead letter) while
the slots it leaves free keep other tenants flowing. Those hand-backs are remembered, so that
they do not count as failed deliveries. A tenant alone may use every slot (nothing to share).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import OrderedDict
from typing import Any

from swarmhub import subjects
from swarmhub.bus import Bus

DEFER_BASE = 0.25
"""Seconds the first hand-back of a task over its tenant's cap waits."""
DEFER_MAX = 2.0
"""Most seconds one hand-back waits (doubling from DEFER_BASE)."""
CONTENTION_INTERVAL = 1.0
"""Seconds between two looks at which tenants have tasks waiting in the stream."""
REMEMBERED = 20_000
"""Hand-back counts kept (as many as a lane's consumer lets be unacked); older ones are forgotten
(their hand-backs then count as deliveries)."""


def tenant_cap(slots: int, share: float) -> int:
    """Most tasks one tenant may hold at once in a router of `slots` slots (at least one)."""
    return max(1, int(slots * share))


class TenantGate:
    """Counts held tasks per tenant against `cap`, and the hand-backs of each message (pure).

    `max_deliver` is the router's dead-letter limit: a message on its last delivery before it is
    taken over the cap, since with several routers the others' hand-backs of it count (each
    router knows only its own), and waiting must never dead-letter a task.
    """

    def __init__(self, cap: int, max_deliver: int = 20, rng: random.Random | None = None) -> None:
        self.cap = cap
        self.max_deliver = max_deliver
        self.held: dict[str, int] = {}
        self.deferred: OrderedDict[int, int] = OrderedDict()
        self.rng = rng or random.Random()
        self.waiting: set[str] = set()
        """Tenants with tasks in the stream, as of the last look."""
        self.handbacks = 0
        """Deliveries handed back for their tenant's cap, since start."""

    @property
    def at_cap(self) -> bool:
        """Whether some tenant holds `cap` tasks or more."""
        return any(held >= self.cap for held in self.held.values())

    @property
    def contended(self) -> bool:
        """Whether more than one tenant has tasks waiting or held: then the cap applies."""
        return len(self.waiting | self.held.keys()) > 1

    def admit(self, tenant: str, seq: int = 0, num_delivered: int = 1) -> bool:
        """Take a slot for `tenant` (for stream message `seq`, delivered `num_delivered` times),
        unless it holds `cap` already while others want slots too."""
        held = self.held.get(tenant, 0)
        if (
            held >= self.cap
            and self.contended
            and self.deliveries(seq, num_delivered) < self.max_deliver - 1
        ):
            return False
        self.held[tenant] = held + 1
        return True

    def release(self, tenant: str) -> None:
        """`tenant` is done with one slot."""
        held = self.held.get(tenant, 0) - 1
        if held > 0:
            self.held[tenant] = held
        else:
            self.held.pop(tenant, None)

    def defer(self, seq: int) -> float:
        """Remember one hand-back of stream message `seq`; the delay to hand it back with."""
        self.handbacks += 1
        count = self.deferred.pop(seq, 0) + 1
        self.deferred[seq] = count
        while len(self.deferred) > REMEMBERED:
            self.deferred.popitem(last=False)
        delay = min(DEFER_MAX, DEFER_BASE * 2.0 ** min(count - 1, 8))
        return delay * (0.5 + self.rng.random() / 2)

    def deliveries(self, seq: int, num_delivered: int) -> int:
        """Deliveries of message `seq` that were not hand-backs for the cap."""
        return num_delivered - self.deferred.get(seq, 0)


async def waiting_tenants(bus: Bus) -> set[str]:
    """Tenants with tasks stored in the task stream (waiting, or held by some router)."""
    request = json.dumps({"subjects_filter": subjects.TASK_SUBMIT_ALL}).encode()
    reply = await bus.nc.request(subjects.stream_info(subjects.TASK_STREAM), request, timeout=2.0)
    found = json.loads(reply.data).get("state", {}).get("subjects") or {}
    return {subjects.tenant_of(subject) for subject in found}


async def contention_loop(bus: Bus, gate: TenantGate, log: Any) -> None:
    """Keep `gate.waiting` current while some tenant holds its cap (only then does it matter:
    a hub whose tenants stay under their caps never pays for the look); a failed look leaves the
    last in place."""
    while True:
        if gate.at_cap:
            try:
                gate.waiting = await waiting_tenants(bus)
            except Exception as exc:
                log.debug("tenants_read_failed", reason=f"{type(exc).__name__}: {exc}")
        else:
            gate.waiting = set()
        await asyncio.sleep(CONTENTION_INTERVAL)
