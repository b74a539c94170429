"""Intake: a continuous pull from the lanes' shared durable consumers, bounded by free slots.

nats-py's `fetch()` starts two asyncio Tasks and a uuid4 for every message it returns and hands
nothing out until its batch ends. Intake instead keeps pull requests outstanding for the free
slots, one inbox subscription per priority lane, so a task is handed to its handler the moment
it arrives; `lanes.LanePlanner` decides how many each lane is asked for.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from swarmhub import metrics, subjects
from swarmhub.task_router.lanes import ACTIVE_FOR, WEIGHTS, LanePlanner, LaneState
from swarmhub.task_router.tenants import TenantGate
from swarmhub.waits import Wakeup

PULL_BATCH = 64
"""Most messages asked for by one pull request."""
PULL_EXPIRES = 1.0
"""Seconds a pull request waits on the server; bounds how long a stopping router waits."""
PENDING_MESSAGES = "Nats-Pending-Messages"
Handler = Callable[[Msg, str, str], Coroutine[Any, Any, None]]
"""Runs one delivered task; gets its message, the name of its lane and its tenant."""


@dataclass
class _Pull:
    expires_at: float
    remaining: int


class PullLedger:
    """How many messages this router has asked for and not yet received (pure; clock injected)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.pulls: collections.deque[_Pull] = collections.deque()
        self.outstanding = 0

    def asked(self, batch: int, expires: float) -> None:
        """A pull request for `batch` messages, valid for `expires` seconds, was sent."""
        self.pulls.append(_Pull(self.clock() + expires, batch))
        self.outstanding += batch

    def delivered(self) -> None:
        """One message arrived (the server fills pull requests oldest first)."""
        while self.pulls:
            pull = self.pulls[0]
            if pull.remaining > 0:
                pull.remaining -= 1
                self.outstanding -= 1
                if pull.remaining == 0:
                    self.pulls.popleft()
                return
            self.pulls.popleft()

    def ended(self) -> None:
        """The oldest pull request ended on the server (expired or cancelled)."""
        if self.pulls:
            self.outstanding -= self.pulls.popleft().remaining

    def expire(self, grace: float = 1.0) -> None:
        """Forget pull requests past their expiry whose end was never reported (a lost 408)."""
        now = self.clock()
        while self.pulls and self.pulls[0].expires_at + grace < now:
            self.outstanding -= self.pulls.popleft().remaining

    def reset(self) -> None:
        """Every request is gone (reconnect, leadership change)."""
        self.pulls.clear()
        self.outstanding = 0


@dataclass
class _Lane:
    """One priority lane as this router's intake sees it."""

    name: str
    next_subject: str
    deliver: str
    ledger: PullLedger
    held: int = 0
    backlog: int = 0
    last_delivery: float = float("-inf")
    sub: Subscription | None = None


class Intake:
    """Keeps up to `slots` tasks held at once and runs `handle` on each as its own task.

    `lanes` are (lane name, pull subject of its consumer), most urgent first.
    """

    def __init__(
        self,
        nc: NATS,
        lanes: Sequence[tuple[str, str]],
        handle: Handler,
        slots: int,
        ack_wait: float,
        track: Callable[[Coroutine[Any, Any, None]], None],
        stopping: asyncio.Event,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
        gate: TenantGate | None = None,
    ) -> None:
        self.nc = nc
        self.gate = gate or TenantGate(slots)
        self.handle = handle
        self.slots = slots
        self.ack_wait = ack_wait
        self.track = track
        self.stopping = stopping
        self.log = log
        self.held: dict[int, Msg] = {}
        self.clock = clock
        self.lanes = [
            _Lane(name, next_subject, nc.new_inbox(), PullLedger(clock))
            for name, next_subject in lanes
        ]
        self._wake = Wakeup()
        self._min_pull = max(1, min(PULL_BATCH, slots // 4))
        self.planner = LanePlanner(
            slots, [WEIGHTS[lane.name] for lane in self.lanes], min_pull=self._min_pull
        )

    @property
    def outstanding(self) -> int:
        """Messages asked for on every lane and not yet delivered."""
        return sum(lane.ledger.outstanding for lane in self.lanes)

    async def start(self) -> None:
        """Subscribe the inboxes that each lane's pull requests are answered on."""
        for lane in self.lanes:
            lane.sub = await self.nc.subscribe(
                lane.deliver,
                cb=functools.partial(self._on_msg, lane),
                pending_msgs_limit=1_000_000,
            )

    async def stop(self) -> None:
        """Unsubscribe (after the pull loop has ended)."""
        for lane in self.lanes:
            if lane.sub is not None:
                with contextlib.suppress(Exception):
                    await lane.sub.unsubscribe()
                lane.sub = None

    def reconnected(self) -> None:
        """Pull requests do not survive a reconnect: ask again for every free slot."""
        for lane in self.lanes:
            lane.ledger.reset()
        self._wake.set()

    def states(self) -> list[LaneState]:
        """Every lane as the planner sees it now (forgetting pulls whose end was never told)."""
        now = self.clock()
        states = []
        for lane in self.lanes:
            lane.ledger.expire()
            states.append(
                LaneState(
                    held=lane.held,
                    outstanding=lane.ledger.outstanding,
                    backlog=lane.backlog,
                    active=now - lane.last_delivery < ACTIVE_FOR,
                )
            )
        return states

    async def _ask(self, lane: _Lane, batch: int) -> bool:
        """Send pull requests for `batch` messages of one lane; False when sending failed."""
        while batch > 0:
            size = min(batch, PULL_BATCH)
            request = {"batch": size, "expires": int(PULL_EXPIRES * 1e9)}
            try:
                await self.nc.publish(
                    lane.next_subject, json.dumps(request).encode(), reply=lane.deliver
                )
            except Exception as exc:
                self.log.warning(
                    "pull_failed", lane=lane.name, reason=f"{type(exc).__name__}: {exc}"
                )
                return False
            lane.ledger.asked(size, PULL_EXPIRES)
            batch -= size
        return True

    async def pull_loop(self) -> None:
        """Keep pull requests outstanding on the lanes as planned until stopping, then wind down."""
        while not self.stopping.is_set():
            asked = failed = False
            for lane, batch in zip(self.lanes, self.planner.plan(self.states()), strict=True):
                if batch > 0:
                    if not await self._ask(lane, batch):
                        failed = True
                        break
                    asked = True
            if asked and not failed:
                continue
            await self._wake.wait(PULL_EXPIRES / 2)
        # Outstanding requests end within PULL_EXPIRES; what they still deliver is handed back.
        deadline = time.monotonic() + PULL_EXPIRES + 0.5
        while self.outstanding > 0 and time.monotonic() < deadline:
            for lane in self.lanes:
                lane.ledger.expire(grace=0.0)
            await self._wake.wait(0.1)

    async def keepalive_loop(self) -> None:
        """Tell JetStream that held messages are still being worked on."""
        interval = max(0.2, self.ack_wait / 3)
        while True:
            for msg in list(self.held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()
            await asyncio.sleep(interval)
            metrics.ROUTER_IN_FLIGHT.set(len(self.held))
            for lane in self.lanes:
                metrics.child(metrics.LANE_BACKLOG, lane.name).set(lane.backlog)

    async def _on_msg(self, lane: _Lane, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None:
            if status in ("408", "409"):
                # 408: the request expired with messages still unsent (so the lane ran dry);
                # 409: the server dropped it (leadership change, consumer deleted, limits).
                # Either way it is over.
                lane.ledger.ended()
                lane.backlog = 0
                self._wake.set()
            return  # 100 (heartbeat) and others carry nothing to do
        lane.ledger.delivered()
        meta = msg.metadata
        lane.backlog = meta.num_pending or 0
        lane.last_delivery = self.clock()
        if lane.ledger.outstanding == 0:
            # The lane used up its pulls (a watching pull was taken, or a backlog filled them):
            # plan again now, rather than at the next slot freed or tick.
            self._wake.set()
        if self.stopping.is_set() or len(self.held) >= self.planner.capacity:
            # Not ours to start now: hand it straight back to be delivered again.
            with contextlib.suppress(Exception):
                await msg.nak()
            self._wake.set()
            return
        seq = meta.sequence.stream
        tenant = subjects.tenant_of(msg.subject)
        if not self.gate.admit(tenant, seq, meta.num_delivered):
            # Its tenant holds its share of the slots: back to the stream for a while, so that
            # the free slots go to other tenants' tasks.
            metrics.TENANT_HANDBACKS.inc()
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.gate.defer(seq))
            self._wake.set()
            return
        self.held[seq] = msg
        lane.held += 1
        self.track(self._run(lane, msg, tenant))

    async def _run(self, lane: _Lane, msg: Msg, tenant: str) -> None:
        seq = msg.metadata.sequence.stream
        try:
            await self.handle(msg, lane.name, tenant)
        except asyncio.CancelledError:
            # Cancelled at the drain deadline: hand it back now rather than after ack_wait.
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        except Exception as exc:
            # Not acked: JetStream redelivers it, and the result stays idempotent by task id.
            self.log.warning("task_unfinished", seq=seq, reason=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
        finally:
            self.held.pop(seq, None)
            self.gate.release(tenant)
            lane.held -= 1
            if (
                self.planner.contended
                or self.slots - len(self.held) - self.outstanding >= self._min_pull
            ):
                self._wake.set()
