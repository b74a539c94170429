"""JetStream publishes whose acknowledgements come back on one shared subscription.

nats-py's `js.publish` makes each publish a full request: a NUID token, a timer, a future
wrapped in `wait_for`, and the PubAck turned into a dataclass field by field. On the hub's hot
path (every submit, every result) that is a large share of the work, so here each publish gets a
counter token under one inbox subscription, timeouts are enforced by one sweep for all publishes,
and the acknowledgement is read as the plain JSON it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from swarmhub.errors import ErrorCode, ServiceError

EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = frozenset({10071, 10164})
"""JetStream's error codes for a failed expected-last-sequence check (the key exists)."""
SWEEP_EVERY = 0.25
"""Seconds between timeout sweeps; a publish times out at most this much late."""


@dataclass(frozen=True)
class Stored:
    """JetStream's acknowledgement: the message is stored as `seq` in `stream`."""

    stream: str
    seq: int
    duplicate: bool = False


class StreamRejected(Exception):
    """JetStream answered with an error (e.g. the expected last sequence did not match)."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, err_code {err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description


class NoStream(Exception):
    """No stream listens on the subject (no responders)."""


class AckTimeout(Exception):
    """No acknowledgement arrived in time; the message may or may not be stored."""


def read_ack(data: bytes) -> Stored:
    """A PubAck's fields, or StreamRejected for an error answer."""
    doc = json.loads(data)
    error = doc.get("error")
    if error is not None:
        raise StreamRejected(
            int(error.get("code", 0)), int(error.get("err_code", 0)), str(error.get("description"))
        )
    return Stored(str(doc.get("stream", "")), int(doc.get("seq", 0)), bool(doc.get("duplicate")))


class StreamAcks:
    """Publishes to JetStream over one connection, acknowledgements muxed on one subscription."""

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self._waiting: dict[str, tuple[asyncio.Future[Stored], float]] = {}
        self._seq = 0
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None

    async def publish(
        self,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None,
        timeout: float,
    ) -> Stored:
        """Publish and wait for the stream's acknowledgement (NoStream, StreamRejected,
        AckTimeout otherwise)."""
        if self._sub is None:
            await self._start()
        self._seq += 1
        token = str(self._seq)
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (future, time.monotonic() + timeout)
        try:
            await self.nc.publish(subject, data, reply=f"{self.prefix}.{token}", headers=headers)
            return await future
        finally:
            self._waiting.pop(token, None)

    async def close(self) -> None:
        """Stop the sweep and unsubscribe; publishes still waiting time out."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        self._fail_all(AckTimeout("the connection is closing"))

    async def _start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._sub is not None:
                return
            self._sub = await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_ack)
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_loop())

    async def _on_ack(self, msg: Msg) -> None:
        token = msg.subject[len(self.prefix) + 1 :]
        entry = self._waiting.get(token)
        if entry is None or entry[0].done():
            return  # timed out already
        future = entry[0]
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(NoStream(msg.subject))
            return
        try:
            future.set_result(read_ack(msg.data))
        except StreamRejected as exc:
            future.set_exception(exc)
        except (ValueError, TypeError, AttributeError) as exc:
            future.set_exception(
                ServiceError(ErrorCode.INTERNAL, f"Unreadable JetStream acknowledgement: {exc}")
            )

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY)
            now = time.monotonic()
            for future, deadline in list(self._waiting.values()):
                if deadline <= now and not future.done():
                    future.set_exception(AckTimeout())

    def _fail_all(self, exc: Exception) -> None:
        for future, _ in list(self._waiting.values()):
            if not future.done():
                future.set_exception(exc)
