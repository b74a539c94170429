"""Many attempts per message: dispatch batches out (router) and answers streamed back (agent).

A router sends every attempt it starts for one agent within one event-loop turn as one RunBatch;
the agent answers each attempt as it finishes, coalescing the answers ready in one turn into one
BatchReply. No attempt waits for another: there is no linger, only what is ready together goes
together. Each message stays within the connection's size limits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

import msgpack
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from swarmhub import codec
from swarmhub.bus import HDR_CONTENT_TYPE, HDR_ERROR_CODE, Bus, raise_for_error
from swarmhub.errors import ErrorCode, NoResponders, ServiceError
from swarmhub.limits import cut
from swarmhub.schemas import MAX_BATCH, BatchReply, ErrorInfo, RunReply

ITEMS = "items"
_ENVELOPE = 16  # map header, the "items" key and an array header
V = TypeVar("V")


def pack_items(items: list[bytes]) -> bytes:
    """`{"items": [...]}` from items already packed as msgpack."""
    packer = msgpack.Packer(use_bin_type=True)
    head: bytes = (
        packer.pack_map_header(1) + packer.pack(ITEMS) + packer.pack_array_header(len(items))
    )
    return head + b"".join(items)


def groups(sizes: list[int], limit: int, most: int = MAX_BATCH) -> list[range]:
    """Consecutive index ranges whose items fit one message of `limit` bytes, `most` at a time."""
    out: list[range] = []
    start, used = 0, _ENVELOPE
    for index, size in enumerate(sizes):
        if index > start and (used + size > limit or index - start >= most):
            out.append(range(start, index))
            start, used = index, _ENVELOPE
        used += size
    if sizes:
        out.append(range(start, len(sizes)))
    return out


_BATCH_HEADERS = {HDR_CONTENT_TYPE: codec.CONTENT_TYPE}
"""The headers of a dispatch batch: no trace context (the router batches only attempts it does
not sample, and the agent runs them untraced), so no hop's traceparent rides on the others."""


class PerTurn(Generic[V]):
    """Values added during one event-loop turn, handed to `send` together at its end, by key."""

    def __init__(self, send: Callable[[dict[str, list[V]]], Coroutine[Any, Any, None]]) -> None:
        self.send = send
        self._pending: dict[str, list[V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, key: str, value: V) -> None:
        """Queue `value` under `key`; the first value of a turn starts the task that sends."""
        if not self._pending:
            # A new task's first step runs after every callback already due, so it takes all
            # that is added until then; starting it here, not from a call_soon, saves a turn.
            task = asyncio.ensure_future(self._hand_over())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._pending.setdefault(key, []).append(value)

    async def _hand_over(self) -> None:
        pending, self._pending = self._pending, {}
        await self.send(pending)

    async def drain(self) -> None:
        """Wait until everything added so far has been handed over and sent."""
        while self._tasks:  # a value waiting to be sent always has its task
            await asyncio.wait(set(self._tasks))


class BatchReplier:
    """Agent side: collects answers per reply subject and sends what is ready once per turn."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._ready: PerTurn[bytes] = PerTurn(self._send)

    def ok(self, reply_to: str, index: int, reply: BaseModel) -> None:
        """Item `index` succeeded with `reply` (one msgpack cannot carry becomes too_large)."""
        try:
            item = codec.pack({"i": index, "ok": reply.model_dump()})
        except (ValueError, OverflowError) as exc:
            unpackable = ServiceError(
                ErrorCode.TOO_LARGE,
                f"Output cannot be encoded as msgpack "
                f"({type(exc).__name__}: {cut(str(exc), 200)}).",
            )
            self.error(reply_to, index, unpackable)
            return
        self._add(reply_to, item, index)

    def error(self, reply_to: str, index: int, exc: ServiceError) -> None:
        """Item `index` failed with `exc`."""
        info = {"code": exc.code.value, "message": cut(exc.message), "retryable": exc.retryable}
        self._add(reply_to, codec.pack({"i": index, "error": info}), index)

    def _add(self, reply_to: str, item: bytes, index: int) -> None:
        if len(item) + _ENVELOPE > self.bus.limits.body:
            too_large = ServiceError(
                ErrorCode.TOO_LARGE,
                f"Output of {len(item)} bytes is above the message limit of "
                f"{self.bus.limits.body} bytes.",
            )
            self.error(reply_to, index, too_large)
            return
        self._ready.add(reply_to, item)

    async def drain(self) -> None:
        """Wait until every answer handed over has been sent."""
        await self._ready.drain()

    async def _send(self, ready: dict[str, list[bytes]]) -> None:
        limit = self.bus.limits.body
        for reply_to, items in ready.items():
            for span in groups([len(i) for i in items], limit):
                with contextlib.suppress(Exception):  # the router times the attempt out
                    await self.bus.nc.publish(
                        reply_to, pack_items(items[span.start : span.stop]), headers=None
                    )


class _Waiting:
    """The attempts of one sent batch that still wait for their answers."""

    __slots__ = ("agent_id", "futures")

    def __init__(self, agent_id: str, futures: list[asyncio.Future[RunReply]]) -> None:
        self.agent_id = agent_id
        self.futures = futures


class BatchDispatcher:
    """Router side: one RunBatch per agent per turn; answers resolve each attempt's future."""

    def __init__(self, bus: Bus, subject_of: Callable[[str], str]) -> None:
        self.bus = bus
        self.subject_of = subject_of
        self.prefix = bus.nc.new_inbox()
        self._outbox: PerTurn[tuple[bytes, asyncio.Future[RunReply]]] = PerTurn(self._send)
        self._waiting: dict[str, _Waiting] = {}
        self._seq = 0
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Listen for answers on this router's own reply subjects."""
        self._sub = await self.bus.nc.subscribe(f"{self.prefix}.*", cb=self._on_reply)

    async def stop(self) -> None:
        """Stop listening."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    def submit(self, agent_id: str, item: bytes) -> asyncio.Future[RunReply]:
        """Queue one packed RunRequest for `agent_id`; the future holds its answer."""
        future: asyncio.Future[RunReply] = asyncio.get_running_loop().create_future()
        self._outbox.add(agent_id, (item, future))
        return future

    def sweep(self) -> None:
        """Forget batches whose attempts all ended (answered, timed out or cancelled)."""
        for token in [t for t, w in self._waiting.items() if all(f.done() for f in w.futures)]:
            del self._waiting[token]

    async def _send(self, outbox: dict[str, list[tuple[bytes, asyncio.Future[RunReply]]]]) -> None:
        limit = self.bus.limits.body
        for agent_id, queued in outbox.items():
            live = [(item, f) for item, f in queued if not f.done()]
            for span in groups([len(item) for item, _ in live], limit):
                part = live[span.start : span.stop]
                self._seq += 1
                token = str(self._seq)
                futures = [f for _, f in part]
                self._waiting[token] = _Waiting(agent_id, futures)
                try:
                    await self.bus.nc.publish(
                        self.subject_of(agent_id),
                        pack_items([item for item, _ in part]),
                        reply=f"{self.prefix}.{token}",
                        headers=_BATCH_HEADERS,  # no trace context: unsampled work only
                    )
                except Exception as exc:
                    self._fail(
                        token,
                        ServiceError(
                            ErrorCode.UNAVAILABLE,
                            f"Could not send to agent {agent_id}: {type(exc).__name__}.",
                            retryable=True,
                        ),
                    )

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        waiting = self._waiting.get(token)
        if waiting is None:
            return  # every attempt of that batch has ended already
        headers = msg.headers or {}
        if headers.get("Status") == "503":
            self._fail(
                token,
                NoResponders(
                    ErrorCode.UNAVAILABLE,
                    f"No agent is listening as {waiting.agent_id}.",
                    retryable=True,
                ),
            )
            return
        try:
            if HDR_ERROR_CODE in headers:
                raise_for_error(msg)
            reply = self.bus.decode(msg.data, BatchReply)
        except ServiceError as exc:
            self._fail(token, exc)
            return
        futures = waiting.futures
        for item in reply.items:
            if item.i >= len(futures):
                continue
            future = futures[item.i]
            if future.done():
                continue
            if item.ok is not None:
                future.set_result(item.ok)
            else:
                error = item.error or ErrorInfo(code=ErrorCode.INTERNAL, message="empty answer")
                future.set_exception(
                    ServiceError(error.code, error.message, retryable=error.retryable)
                )
        if all(f.done() for f in futures):
            self._waiting.pop(token, None)

    def _fail(self, token: str, exc: ServiceError) -> None:
        waiting = self._waiting.pop(token, None)
        if waiting is None:
            return
        for future in waiting.futures:
            if not future.done():
                future.set_exception(type(exc)(exc.code, exc.message, retryable=exc.retryable))
