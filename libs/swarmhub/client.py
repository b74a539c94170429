"""The client API: submit tasks, wait for results, inspect the swarm, use the cache."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import KeyNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from swarmhub import codec, subjects
from swarmhub.bus import Bus, connect
from swarmhub.config import BusSettings, default_nats_url, redact_url
from swarmhub.credentials import client_url
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import check_schedule, cut
from swarmhub.registry import read_agents
from swarmhub.schemas import (
    Ack,
    AgentRecord,
    CacheDelReply,
    CacheGetReply,
    CacheKey,
    CacheSet,
    CacheStats,
    DeadLetter,
    Empty,
    SwarmJob,
    SwarmJobResult,
    Task,
    TaskResult,
)


class SwarmClient:
    """A connection to a SwarmHub cluster."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._kv: dict[str, KeyValue] = {}

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        name: str = "swarmhub-client",
        reconnect: bool = False,
        role: str = "client",
    ) -> SwarmClient:
        """Connect to `url` (default: SWARMHUB_NATS_URL, else nats://127.0.0.1:4222).

        A URL without credentials logs in as `role` of the local cluster whose credentials file
        is found (see `swarmhub.credentials`).
        """
        settings = BusSettings(nats_url=client_url(url or default_nats_url(), role))
        try:
            # Bounded: nats-py may wait forever for a server that never answers (nats.py#645).
            nc = await asyncio.wait_for(
                connect(settings, name, reconnect=reconnect),
                timeout=settings.connect_timeout * 3,
            )
        except Exception as exc:
            detail = str(exc) or f"no answer within {settings.connect_timeout * 3:g} s"
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"Cannot connect to NATS at {redact_url(settings.nats_url)} ({cut(detail, 200)}). "
                "Is the cluster running (`swarmhub up`)?",
            ) from None
        return cls(Bus(nc, settings))

    async def __aenter__(self) -> SwarmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Drain and close the connection."""
        await self.bus.close()

    async def _bucket(self, name: str) -> KeyValue:
        if name not in self._kv:
            try:
                self._kv[name] = await self.bus.js.key_value(name)
            except NotFoundError:
                raise ServiceError(
                    ErrorCode.UNAVAILABLE,
                    f"KV bucket {name!r} does not exist yet: no router or coordinator has started.",
                ) from None
        return self._kv[name]

    # -- tasks ------------------------------------------------------------------------------

    async def submit(self, task: Task) -> Task:
        """Publish a task durably; returns once JetStream acknowledged it.

        Raises ServiceError(too_large) for a task over the task limit (see `swarmhub.limits`).
        """
        data = self.bus.encode(task)
        self.bus.limits.check_task(len(data))
        check_schedule(task, time.time())
        await self.bus.js_publish(
            subjects.task_submit(task.capability),
            data,
            msg_id=task.id,
            template=subjects.TEMPLATES["submit"],
        )
        return task

    async def result(self, task_id: str) -> TaskResult | None:
        """The stored final result of a task, or None while it has none."""
        kv = await self._bucket(subjects.RESULTS_BUCKET)
        try:
            entry = await kv.get(task_id)
        except KeyNotFoundError:
            return None
        except (NatsTimeoutError, ServiceUnavailableError, ConnectionClosedError) as exc:
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"The result store did not answer for task {task_id} ({type(exc).__name__}).",
                retryable=True,
            ) from None
        return codec.decode(entry.value or b"", TaskResult)

    async def wait(self, task_id: str, timeout: float = 60.0) -> TaskResult:
        """Wait for a task's final result as stored by the hub.

        The result event only wakes the wait: what is returned is always the stored result, so
        an event published by anyone else cannot stand in for it.
        """
        arrived = asyncio.Event()

        async def on_result(msg: Msg) -> None:
            arrived.set()

        sub = await self.bus.nc.subscribe(subjects.task_result(task_id), cb=on_result)
        deadline = time.monotonic() + timeout
        try:
            while True:
                arrived.clear()
                try:
                    stored = await self.result(task_id)
                except ServiceError as exc:
                    if not exc.retryable:
                        raise
                    stored = None  # the store is briefly away (e.g. an election): keep waiting
                if stored is not None:
                    return stored
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServiceError(
                        ErrorCode.TIMEOUT, f"Task {task_id} has no result after {timeout:g} s."
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), timeout=min(1.0, left))
        finally:
            await sub.unsubscribe()

    async def run(self, task: Task, timeout: float = 60.0) -> TaskResult:
        """Submit a task and wait for its result."""
        await self.submit(task)
        return await self.wait(task.id, timeout)

    # -- dead letters -----------------------------------------------------------------------

    async def dead_letters(self, limit: int = 1000) -> list[tuple[int, DeadLetter]]:
        """Dead letters in stream order as (stream sequence, letter), oldest first."""
        try:
            info = await self.bus.js.stream_info(subjects.DEAD_STREAM)
        except NotFoundError:
            return []
        letters: list[tuple[int, DeadLetter]] = []
        seq = info.state.first_seq
        while seq and seq <= info.state.last_seq and len(letters) < limit:
            try:
                raw = await self.bus.js.get_msg(subjects.DEAD_STREAM, seq=seq, next=True)
            except NotFoundError:
                break
            if raw.seq is None or raw.data is None:
                break
            try:
                letters.append((raw.seq, codec.decode(raw.data, DeadLetter)))
            except ServiceError:
                pass
            seq = raw.seq + 1
        return letters

    async def replay(self, seq: int, letter: DeadLetter) -> Task:
        """Resubmit a dead letter's original task under a new id, then drop the letter."""
        try:
            original = codec.decode(letter.body, Task)
        except ServiceError as exc:
            raise ServiceError(
                ErrorCode.INVALID_TASK,
                f"Dead letter {seq} cannot be replayed: its body is not a valid task "
                f"({exc.message})",
            ) from None
        deadline = (
            original.deadline if original.deadline and original.deadline > time.time() else None
        )
        task = original.model_copy(
            update={
                "id": f"{original.id[:100]}-replay-{seq}",
                "attempt": 0,
                "last_error": None,
                "not_before": None,
                "tried_agents": [],
                "deadline": deadline,
                "created_at": time.time(),
            }
        )
        await self.submit(task)
        await self.bus.js.delete_msg(subjects.DEAD_STREAM, seq)
        return task

    # -- swarm ------------------------------------------------------------------------------

    async def agents(self) -> list[AgentRecord]:
        """Live agents as the registry holds them."""
        return await read_agents(await self._bucket(subjects.AGENTS_BUCKET))

    async def discover(
        self, verb: str = "INFO", name: str = "", wait: float = 0.5
    ) -> list[dict[str, Any]]:
        """Scatter-gather `$SRV.<verb>[.<name>]` and return every answer within `wait` seconds."""
        subject = f"{subjects.SRV_PREFIX}.{verb}" + (f".{name}" if name else "")
        inbox = self.bus.nc.new_inbox()
        answers: list[dict[str, Any]] = []

        async def collect(msg: Msg) -> None:
            try:
                answers.append(json.loads(msg.data))
            except ValueError:
                pass

        sub = await self.bus.nc.subscribe(inbox, cb=collect)
        await self.bus.nc.publish(subject, b"", reply=inbox)
        await self.bus.nc.flush()
        await asyncio.sleep(wait)
        await sub.unsubscribe()
        return sorted(answers, key=lambda a: (a.get("name", ""), a.get("id", "")))

    async def run_job(self, job: SwarmJob) -> SwarmJobResult:
        """Fan a job out across live agents through the coordinator and return the reduction."""
        return await self.bus.request(
            subjects.SWARM_JOB_SUBMIT, job, SwarmJobResult, timeout=job.timeout + 2.0
        )

    # -- cache ------------------------------------------------------------------------------

    async def cache_get(self, key: str, namespace: str = "default") -> tuple[bool, Any]:
        """(hit, value) from the shared cache."""
        reply = await self.bus.request(
            subjects.CACHE_GET, CacheKey(namespace=namespace, key=key), CacheGetReply
        )
        return reply.hit, reply.value

    async def cache_set(
        self, key: str, value: Any, namespace: str = "default", ttl: float | None = None
    ) -> None:
        """Store a value in the shared cache."""
        await self.bus.request(
            subjects.CACHE_SET, CacheSet(namespace=namespace, key=key, value=value, ttl=ttl), Ack
        )

    async def cache_delete(self, key: str, namespace: str = "default") -> bool:
        """Delete a key; True when it existed."""
        reply = await self.bus.request(
            subjects.CACHE_DEL, CacheKey(namespace=namespace, key=key), CacheDelReply
        )
        return reply.deleted

    async def cache_stats(self) -> CacheStats:
        """Counters of the cache instance that answers."""
        return await self.bus.request(subjects.CACHE_STATS, Empty(), CacheStats)


class ResultCollector:
    """Collects result events for many tasks at once (for loads and tests)."""

    def __init__(self, client: SwarmClient) -> None:
        self.client = client
        self.results: dict[str, TaskResult] = {}
        self.events: dict[str, int] = {}
        self._arrived = asyncio.Event()
        self._sub: Any = None

    async def start(self) -> ResultCollector:
        """Subscribe to every result event."""

        async def on_result(msg: Msg) -> None:
            try:
                result = codec.decode(msg.data, TaskResult)
            except ServiceError:
                return
            self.events[result.task_id] = self.events.get(result.task_id, 0) + 1
            self.results.setdefault(result.task_id, result)
            self._arrived.set()

        self._sub = await self.client.bus.nc.subscribe(subjects.TASK_RESULT_ALL, cb=on_result)
        await self.client.bus.nc.flush()
        return self

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def wait_all(self, task_ids: Iterable[str], timeout: float) -> dict[str, TaskResult]:
        """Wait until every id has a result (events, then the store for stragglers)."""
        wanted = set(task_ids)
        deadline = time.monotonic() + timeout
        last_poll = time.monotonic()
        while True:
            missing = wanted - self.results.keys()
            if not missing:
                break
            now = time.monotonic()
            if now >= deadline:
                break
            if now - last_poll > 2.0:
                last_poll = now
                try:
                    for task_id in list(missing)[:500]:
                        stored = await self.client.result(task_id)
                        if stored is not None:
                            self.results.setdefault(task_id, stored)
                except ServiceError as exc:
                    if not exc.retryable:
                        raise  # else: the store is briefly away; poll again next round
                continue
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout=min(0.5, deadline - now))
            except TimeoutError:
                pass
        return {t: self.results[t] for t in wanted if t in self.results}
