"""Intake: a continuous pull from the shared durable consumer, bounded by free slots; ack or nak.

nats-py's `fetch()` starts two asyncio Tasks and a uuid4 for every message it returns and hands
nothing out until its batch ends. Intake instead keeps pull requests outstanding for every free
slot on one inbox subscription, so a task is handed to its handler the moment it arrives.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from swarmhub import metrics

PULL_BATCH = 64
"""Most messages asked for by one pull request."""
PULL_EXPIRES = 1.0
"""Seconds a pull request waits on the server; bounds how long a stopping router waits."""
PENDING_MESSAGES = "Nats-Pending-Messages"
Handler = Callable[[Msg], Coroutine[Any, Any, None]]


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


class Intake:
    """Keeps up to `slots` tasks held at once and runs `handle` on each as its own task."""

    def __init__(
        self,
        nc: NATS,
        next_subject: str,
        handle: Handler,
        slots: int,
        ack_wait: float,
        track: Callable[[Coroutine[Any, Any, None]], None],
        stopping: asyncio.Event,
        log: Any,
    ) -> None:
        self.nc = nc
        self.next_subject = next_subject
        self.handle = handle
        self.slots = slots
        self.ack_wait = ack_wait
        self.track = track
        self.stopping = stopping
        self.log = log
        self.held: dict[int, Msg] = {}
        self.ledger = PullLedger()
        self.deliver = nc.new_inbox()
        self._wake = asyncio.Event()
        self._sub: Subscription | None = None
        self._min_pull = max(1, min(PULL_BATCH, slots // 4))

    async def start(self) -> None:
        """Subscribe the inbox that pull requests are answered on."""
        self._sub = await self.nc.subscribe(
            self.deliver, cb=self._on_msg, pending_msgs_limit=1_000_000
        )

    async def stop(self) -> None:
        """Unsubscribe (after the pull loop has ended)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    def reconnected(self) -> None:
        """Pull requests do not survive a reconnect: ask again for every free slot."""
        self.ledger.reset()
        self._wake.set()

    async def pull_loop(self) -> None:
        """Keep a pull request outstanding for every free slot until stopping, then wind down."""
        while not self.stopping.is_set():
            self.ledger.expire()
            free = self.slots - len(self.held) - self.ledger.outstanding
            if free >= self._min_pull or (free > 0 and self.ledger.outstanding == 0):
                batch = min(free, PULL_BATCH)
                request = {"batch": batch, "expires": int(PULL_EXPIRES * 1e9)}
                try:
                    await self.nc.publish(
                        self.next_subject, json.dumps(request).encode(), reply=self.deliver
                    )
                    self.ledger.asked(batch, PULL_EXPIRES)
                    continue
                except Exception as exc:
                    self.log.warning("pull_failed", reason=f"{type(exc).__name__}: {exc}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=PULL_EXPIRES / 2)
        # Outstanding requests end within PULL_EXPIRES; what they still deliver is handed back.
        deadline = time.monotonic() + PULL_EXPIRES + 0.5
        while self.ledger.outstanding > 0 and time.monotonic() < deadline:
            self.ledger.expire(grace=0.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.1)

    async def keepalive_loop(self) -> None:
        """Tell JetStream that held messages are still being worked on."""
        interval = max(0.2, self.ack_wait / 3)
        while True:
            for msg in list(self.held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()
            await asyncio.sleep(interval)
            metrics.ROUTER_IN_FLIGHT.set(len(self.held))

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None:
            if status in ("408", "409"):
                # 408: the request expired with messages still unsent; 409: the server dropped
                # it (leadership change, consumer deleted, limits). Either way it is over.
                self.ledger.ended()
                self._wake.set()
            return  # 100 (heartbeat) and others carry nothing to do
        self.ledger.delivered()
        if self.stopping.is_set() or len(self.held) >= self.slots:
            # Not ours to start now: hand it straight back to be delivered again.
            with contextlib.suppress(Exception):
                await msg.nak()
            self._wake.set()
            return
        self.held[msg.metadata.sequence.stream] = msg
        self.track(self._run(msg))

    async def _run(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        try:
            await self.handle(msg)
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
            if self.slots - len(self.held) - self.ledger.outstanding >= self._min_pull:
                self._wake.set()
