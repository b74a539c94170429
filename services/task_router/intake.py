"""Intake: fetch tasks from the shared durable consumer in batches, keep them held, ack or nak."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.client import JetStreamContext

from swarmhub import metrics

FETCH_BATCH = 64
Handler = Callable[[Msg], Coroutine[Any, Any, None]]


class Intake:
    """Fetches at most `slots` messages at a time and runs `handle` on each as its own task."""

    def __init__(
        self,
        consumer: JetStreamContext.PullSubscription,
        handle: Handler,
        slots: int,
        ack_wait: float,
        track: Callable[[Coroutine[Any, Any, None]], None],
        stopping: asyncio.Event,
        log: Any,
    ) -> None:
        self.consumer = consumer
        self.handle = handle
        self.slots = asyncio.Semaphore(slots)
        self.ack_wait = ack_wait
        self.track = track
        self.stopping = stopping
        self.log = log
        self.held: dict[int, Msg] = {}

    async def fetch_loop(self) -> None:
        """Take free slots, fetch that many messages, hand each to its own handler task."""
        while not self.stopping.is_set():
            await self.slots.acquire()
            if self.stopping.is_set():
                self.slots.release()
                break
            taken = 1
            while taken < FETCH_BATCH and not self.slots.locked():
                await self.slots.acquire()
                taken += 1
            try:
                msgs = await self.consumer.fetch(taken, timeout=1.0)
            except NatsTimeoutError:
                msgs = []
            except Exception as exc:
                msgs = []
                self.log.warning("fetch_failed", reason=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
            for _ in range(taken - len(msgs)):
                self.slots.release()
            # fetch(n) may hand back more than n (answers to pull requests left over from a
            # reconnect); what we have no slot for goes straight back to be redelivered.
            for extra in msgs[taken:]:
                with contextlib.suppress(Exception):
                    await extra.nak()
            for msg in msgs[:taken]:
                self.track(self._hold(msg))
            metrics.ROUTER_IN_FLIGHT.set(len(self.held))

    async def keepalive_loop(self) -> None:
        """Tell JetStream that held messages are still being worked on."""
        interval = max(0.2, self.ack_wait / 3)
        while True:
            for msg in list(self.held.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()
            await asyncio.sleep(interval)
            metrics.ROUTER_IN_FLIGHT.set(len(self.held))

    async def _hold(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        self.held[seq] = msg
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
            self.slots.release()
