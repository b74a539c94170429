"""The client API: submit tasks, wait for results, inspect the swarm, use the cache."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import KeyNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from swarmhub import codec, subjects, telemetry, tracing
from swarmhub.bus import Bus, connect
from swarmhub.config import BusSettings, default_nats_url, redact_url, scrub_credentials
from swarmhub.credentials import client_url
from swarmhub.errors import (
    ErrorCode,
    NoAgent,
    ServiceError,
    TaskFailed,
    TaskTimeout,
)
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
    CancelReply,
    CancelRequest,
    DeadLetter,
    Empty,
    JobAccepted,
    JobProgress,
    JobRequest,
    JobStatusReply,
    ResultStatus,
    SwarmJob,
    SwarmJobResult,
    Task,
    TaskProgress,
    TaskResult,
)
from swarmhub.store import holds_value
from swarmhub.subjects import check_token
from swarmhub.tls import tls_first

E = TypeVar("E", bound=BaseModel)

Progress = Callable[[int, int], None]
"""Called as progress(done, total) while many tasks run."""


def check_result(result: TaskResult) -> TaskResult:
    """`result` if the task succeeded; else raise TaskFailed (NoAgent when no agent took it)."""
    if result.status is ResultStatus.SUCCEEDED:
        return result
    code = result.error.code if result.error else ErrorCode.INTERNAL
    detail = result.error.message if result.error else "no error recorded"
    family = NoAgent if code is ErrorCode.NO_AGENT else TaskFailed
    raise family(
        code,
        f"Task {result.task_id} {result.status.value} after {result.attempts} attempt(s): {detail}",
        result=result,
    )


def result_of(msg: Msg) -> TaskResult | None:
    """The TaskResult a result event carries; None for a delete marker or an undecodable body."""
    if not holds_value(msg):
        return None
    try:
        return codec.decode(msg.data, TaskResult)
    except ServiceError:
        return None


def as_task(task: Task | str, payload: dict[str, Any] | None, fields: dict[str, Any]) -> Task:
    """A Task given as one, or as a capability name, its payload and other Task fields."""
    if isinstance(task, Task):
        if payload is not None or fields:
            raise TypeError("Pass either a Task, or a capability with its payload and fields.")
        return task
    return Task(capability=task, payload=payload or {}, **fields)


class Connecting:
    """What `SwarmClient.connect()` returns: await it, or use it as `async with ... as client`."""

    def __init__(self, connecting: Any) -> None:
        self._connecting = connecting
        self._client: SwarmClient | None = None

    def __await__(self) -> Generator[Any, None, SwarmClient]:
        return self._connecting.__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> SwarmClient:
        self._client = await self._connecting
        return self._client

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()


class SwarmClient:
    """A connection to a SwarmHub cluster."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    @property
    def tenant(self) -> str:
        """Whose tasks this client submits and reads: its NATS user (see `roles.tenant_for`)."""
        return self.bus.tenant

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        name: str = "swarmhub-client",
        reconnect: bool = False,
        role: str = "client",
    ) -> Connecting:
        """Connect to `url` (default: SWARMHUB_NATS_URL, else nats://127.0.0.1:4222).

        Use as `client = await SwarmClient.connect()` or `async with SwarmClient.connect() as
        client`. A URL without credentials logs in as `role` of the local cluster whose
        credentials file is found (see `swarmhub.credentials`). Raises Unavailable when no
        server answers.
        """
        return Connecting(cls.open(url, name=name, reconnect=reconnect, role=role))

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        name: str = "swarmhub-client",
        reconnect: bool = False,
        role: str = "client",
    ) -> SwarmClient:
        """Connect and return the client: what awaiting `connect()` does."""
        settings = BusSettings(nats_url=client_url(url or default_nats_url(), role))
        # nats-py retries a refused or unauthorized first connect every 2 s until its timeout;
        # give up once every server has said no, and say why (nats.py#645: it may also hang).
        errors: list[str] = []
        refused = asyncio.get_running_loop().create_future()
        servers = len(settings.nats_url.split(","))

        def on_event(kind: str, detail: str) -> None:
            if kind == "error" and not refused.done():
                errors.append(detail)
                if len(errors) >= servers:
                    refused.set_result(None)

        connecting = asyncio.ensure_future(
            connect(settings, name, reconnect=reconnect, on_event=on_event)
        )
        try:
            await asyncio.wait(
                (connecting, refused),
                timeout=settings.connect_timeout * 3,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not connecting.done():
                connecting.cancel()
                raise ConnectionError(
                    errors[-1] if errors else f"no answer within {settings.connect_timeout * 3:g} s"
                )
            nc = connecting.result()
        except Exception as exc:
            detail = scrub_credentials(str(exc)) or type(exc).__name__
            if "Authorization" in detail:
                hint = (
                    "Check the user and password in the URL, or the credentials file (found "
                    "from SWARMHUB_DATA_DIR, else ./.data)."
                )
            elif tls_first(settings.nats_url):
                hint = (
                    "With a tls:// URL the client starts TLS at once: is the cluster running "
                    "with TLS (`swarmhub up --tls`), and does the server accept TLS first "
                    "(`handshake_first`)? Nothing was sent in plaintext."
                )
            else:
                hint = "Is the cluster running (`swarmhub up`)?"
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"Cannot connect to NATS at {redact_url(settings.nats_url)} ({cut(detail, 200)}). "
                + hint,
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
        try:
            return await self.bus.bucket(name)
        except NotFoundError:
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"KV bucket {name!r} does not exist yet: no router or coordinator has started.",
            ) from None
        except NatsTimeoutError:  # JetStream electing its leaders (a cluster starting)
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"JetStream did not answer about KV bucket {name!r} in time.",
                retryable=True,
            ) from None

    # -- tasks ------------------------------------------------------------------------------

    async def submit(
        self, task: Task | str, payload: dict[str, Any] | None = None, **fields: Any
    ) -> Task:
        """Publish a task durably; returns it once JetStream acknowledged it.

        Pass a Task, or a capability name with its payload and any Task fields
        (`submit("echo", {"text": "hi"}, priority="high")`). Raises Rejected (too_large) for
        a task over the task limit (see `swarmhub.limits`), pydantic's ValidationError for
        fields that do not fit the Task schema.
        """
        task = as_task(task, payload, fields)
        data = self.bus.encode(task)
        self.bus.limits.check_task(len(data))
        check_schedule(task, time.time())
        telemetry.trace_client()  # the CLI and scripts trace too when an OTLP endpoint is set
        await self.bus.js_publish(
            subjects.task_submit(self.tenant, task.capability, task.priority),
            data,
            # Dedupe per tenant: another tenant's task of the same id is another task, and no
            # other tenant can write this tenant's ids (they are keyed with its password).
            msg_id=subjects.submit_id(self.tenant, task.id, self.bus.dedupe_key),
            template=subjects.submit_template(task.priority),
            span_attributes=tracing.task_attributes(task.id, task.capability)
            if tracing.switch.on
            else None,
        )
        return task

    async def result(self, task_id: str) -> TaskResult | None:
        """The stored final result of a task, or None while it has none."""
        try:
            check_token(task_id, "task id")
        except ValueError as exc:
            raise ServiceError(ErrorCode.BAD_REQUEST, str(exc)) from None
        key = subjects.result_key(self.tenant, task_id)
        return await self._stored(subjects.RESULTS_BUCKET, key, TaskResult, direct=True)

    async def _stored(
        self, bucket: str, key: str, model: type[E], *, direct: bool = False
    ) -> E | None:
        """The value stored under `key` in `bucket`, or None; an absent store raises Unavailable.

        `direct` reads by direct get alone, for buckets whose stream a client may not look at.
        """
        kv = self.bus.direct_bucket(bucket) if direct else await self._bucket(bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        except (NatsTimeoutError, ServiceUnavailableError, ConnectionClosedError) as exc:
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"The store {bucket!r} did not answer for {key!r} ({type(exc).__name__}).",
                retryable=True,
            ) from None
        return codec.decode(entry.value or b"", model)

    async def wait(self, task_id: str, timeout: float = 60.0, *, check: bool = True) -> TaskResult:
        """Wait for a task's final result as stored by the hub.

        Raises TaskTimeout after `timeout` seconds and, with `check`, TaskFailed (NoAgent when
        no agent took it) unless the task succeeded. The result event only wakes the wait: what
        is returned is always the stored result, so an event published by anyone else cannot
        stand in for it.
        """
        arrived = asyncio.Event()

        async def on_result(msg: Msg) -> None:
            arrived.set()

        sub = await self.bus.nc.subscribe(subjects.task_result(self.tenant, task_id), cb=on_result)
        try:
            stored = await self._await_stored(
                lambda: self.result(task_id),
                arrived,
                time.monotonic() + timeout,
                f"Task {task_id} has no result after {timeout:g} s; it may still finish "
                f"(`swarmhub result {task_id}`).",
            )
        finally:
            await sub.unsubscribe()
        return check_result(stored) if check else stored

    async def _await_stored(
        self,
        read: Callable[[], Awaitable[E | None]],
        arrived: asyncio.Event,
        deadline: float,
        timeout_message: str,
    ) -> E:
        """Read the store each time `arrived` is set (and at least every second) until it holds
        the value; TaskTimeout with `timeout_message` once `deadline` (monotonic) has passed."""
        while True:
            arrived.clear()
            try:
                stored = await read()
            except ServiceError as exc:
                if not exc.retryable:
                    raise
                stored = None  # the store is briefly away (e.g. an election): keep waiting
            if stored is not None:
                return stored
            left = deadline - time.monotonic()
            if left <= 0:
                raise TaskTimeout(ErrorCode.TIMEOUT, timeout_message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), timeout=min(1.0, left))

    async def run(
        self,
        task: Task | str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float = 60.0,
        check: bool = True,
        on_progress: Callable[[TaskProgress], None] | None = None,
        **fields: Any,
    ) -> TaskResult:
        """Submit a task (as `submit` takes it) and wait for its result (raising as `wait` does).

        `on_progress` is called with each TaskProgress event (running on an agent, retrying,
        waiting for an agent) while the task moves; it asks the router to send them.
        """
        todo = as_task(task, payload, fields)
        if on_progress is None:
            await self.submit(todo)
            return await self.wait(todo.id, timeout, check=check)
        todo = todo.model_copy(update={"progress": True})
        progress = subjects.task_progress(self.tenant, todo.id)
        async with self._listen(progress, TaskProgress, on_progress):
            await self.submit(todo)
            return await self.wait(todo.id, timeout, check=check)

    @contextlib.asynccontextmanager
    async def _listen(
        self, subject: str, model: type[E], report: Callable[[E], None] | None
    ) -> AsyncIterator[asyncio.Event]:
        """Hear events on `subject` while inside: each sets the yielded Event and, decoded as
        `model`, goes to `report` (undecodable ones are dropped)."""
        heard = asyncio.Event()

        async def on_event(msg: Msg) -> None:
            heard.set()
            if report is not None:
                with contextlib.suppress(ServiceError):
                    report(codec.decode(msg.data, model))

        sub = await self.bus.nc.subscribe(subject, cb=on_event)
        try:
            yield heard
        finally:
            await sub.unsubscribe()

    async def cancel(self, task_id: str) -> CancelReply:
        """Cancel a task: a queued one never runs, a running attempt is stopped on its agent.

        Its final result becomes `cancelled` (CancelReply.state "cancelled"), unless it had one
        already ("finished", with that result). Cancelling an id before its task is submitted
        keeps the task from ever running.
        """
        return await self.bus.request(
            subjects.task_cancel(self.tenant),
            CancelRequest(task_id=task_id),
            CancelReply,
            template=subjects.TEMPLATES["cancel"],
        )

    async def submit_many(
        self, tasks: Iterable[Task], *, in_flight: int = 256, progress: Progress | None = None
    ) -> list[Task]:
        """Publish many tasks, up to `in_flight` acknowledgements awaited at once; in order."""
        todo = list(tasks)
        slots = asyncio.Semaphore(in_flight)
        done = 0

        async def one(task: Task) -> Task:
            nonlocal done
            async with slots:
                await self.submit(task)
            done += 1
            if progress is not None:
                progress(done, len(todo))
            return task

        return list(await asyncio.gather(*(one(t) for t in todo)))

    async def map(
        self,
        capability: str,
        payloads: Iterable[dict[str, Any]],
        *,
        timeout: float = 300.0,
        progress: Progress | None = None,
        **task_fields: Any,
    ) -> list[TaskResult]:
        """Run `capability` once per payload; the results in input order (failed ones included).

        `task_fields` (priority, max_attempts, attempt_timeout, ...) apply to every task.
        `progress(done, total)` is called as results arrive. Raises TaskTimeout naming how many
        are missing when `timeout` seconds pass first.
        """
        tasks = [Task(capability=capability, payload=p, **task_fields) for p in payloads]
        collector = await ResultCollector(self).start()
        try:
            await self.submit_many(tasks)
            found = await collector.wait_all([t.id for t in tasks], timeout, progress=progress)
        finally:
            await collector.stop()
        missing = [t.id for t in tasks if t.id not in found]
        if missing:
            raise TaskTimeout(
                ErrorCode.TIMEOUT,
                f"{len(missing)} of {len(tasks)} tasks have no result after {timeout:g} s "
                f"(first: {missing[0]}).",
            )
        return [found[t.id] for t in tasks]

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

    # -- swarm jobs -------------------------------------------------------------------------

    async def submit_job(self, job: SwarmJob) -> JobAccepted:
        """Hand a swarm job to the hub; returns once it is stored.

        From then on the job ends with exactly one SwarmJobResult, even if a coordinator or a
        worker dies. Submitting the same id again answers the job already stored
        (JobAccepted.existing). Raises NoAgent when no live agent offers the capability (or an
        ensemble asks for more distinct agents than are live), Rejected (bad_request,
        too_large) past the limits, Unavailable when no coordinator answers. The job is the
        client's tenant's: job ids are per tenant, and no other tenant sees it.
        """
        return await self.bus.request(subjects.job_submit(self.tenant), job, JobAccepted)

    async def job_result(self, job_id: str) -> SwarmJobResult | None:
        """The stored final result of one of the tenant's swarm jobs, or None while it has none.

        Read by direct get of the tenant's own key (the only keys of the jobs bucket it may
        read); in open mode, a job stored before tenants is found under its old key too.
        """
        try:
            check_token(job_id, "job id")
        except ValueError as exc:
            raise ServiceError(ErrorCode.BAD_REQUEST, str(exc)) from None
        keys = [subjects.job_key("result", self.tenant, job_id)]
        if self.tenant == subjects.OPEN_TENANT:
            keys.append(subjects.legacy_job_key("result", job_id))
        for key in keys:
            result = await self._stored(subjects.JOBS_BUCKET, key, SwarmJobResult, direct=True)
            if result is not None:
                return result
        return None

    async def job_status(self, job_id: str) -> JobStatusReply:
        """Where a swarm job stands (done/failed/running of total), with its result when done."""
        return await self.bus.request(
            subjects.job_status(self.tenant), JobRequest(job_id=job_id), JobStatusReply
        )

    async def cancel_job(self, job_id: str) -> JobStatusReply:
        """Cancel a swarm job: its result becomes `cancelled` (unless it had one) and its
        unfinished sub-tasks are cancelled. Raises Rejected (not_found) for an unknown id."""
        return await self.bus.request(
            subjects.job_cancel(self.tenant), JobRequest(job_id=job_id), JobStatusReply
        )

    async def wait_job(
        self,
        job_id: str,
        timeout: float = 300.0,
        *,
        on_progress: Callable[[JobProgress], None] | None = None,
    ) -> SwarmJobResult:
        """Wait for a swarm job's final result as stored by the hub.

        `on_progress` gets each JobProgress event (done, failed and running of total). The
        result is the stored one: read from the store, or taken from the `done` event that
        carries it (only coordinators may publish job events). Raises TaskTimeout after
        `timeout` seconds (the job itself goes on).
        """
        carried = _CarriedResult(job_id, on_progress)
        event = subjects.swarm_job_event(self.tenant, job_id)
        async with self._listen(event, JobProgress, carried) as heard:
            return await self._wait_job(job_id, timeout, heard, carried)

    async def _wait_job(
        self,
        job_id: str,
        timeout: float,
        arrived: asyncio.Event,
        carried: _CarriedResult,
        *,
        listened: bool = False,
    ) -> SwarmJobResult:
        deadline = time.monotonic() + timeout
        if listened:  # events were heard from before the job existed: wait for one first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), timeout=min(1.0, timeout))

        async def read() -> SwarmJobResult | None:
            # The done event's copy saves a read of the store per job.
            return carried.result or await self.job_result(job_id)

        return await self._await_stored(
            read,
            arrived,
            deadline,
            f"Swarm job {job_id} has no result after {timeout:g} s; it may still finish "
            f"(`swarmhub swarm status {job_id}`).",
        )

    async def run_job(
        self,
        job: SwarmJob,
        *,
        timeout: float = 300.0,
        on_progress: Callable[[JobProgress], None] | None = None,
    ) -> SwarmJobResult:
        """Submit a swarm job (as `submit_job`) and wait for its result (as `wait_job`).

        A map: `SwarmJob(capability="echo", inputs=[{...}, ...])`; an ensemble with a vote:
        `SwarmJob(capability="answer", payload={...}, ensemble=3, reduce="vote")`. The result's
        status says how it ended; it is returned whatever it is.
        """
        carried = _CarriedResult(job.id, on_progress)
        # Listen before submitting, so a job that ends at once still wakes the wait.
        event = subjects.swarm_job_event(self.tenant, job.id)
        async with self._listen(event, JobProgress, carried) as heard:
            await self.submit_job(job)
            result = await self._wait_job(job.id, timeout, heard, carried, listened=True)
        if on_progress is not None and not carried.done:
            # The result is stored just before its "done" event is sent: report it anyway.
            on_progress(JobProgress.done(result))
        return result

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


class _CarriedResult:
    """Hears a job's progress events: passes them on and keeps the result a `done` one carries."""

    def __init__(self, job_id: str, on_progress: Callable[[JobProgress], None] | None) -> None:
        self.job_id = job_id
        self.on_progress = on_progress
        self.done = False
        self.result: SwarmJobResult | None = None

    def __call__(self, progress: JobProgress) -> None:
        if progress.state == "done":
            self.done = True
            if progress.result is not None and progress.result.job_id == self.job_id:
                self.result = progress.result
        if self.on_progress is not None:
            self.on_progress(progress)


class ResultCollector:
    """Collects result events for many tasks at once (for loads and tests)."""

    def __init__(self, client: SwarmClient) -> None:
        self.client = client
        self.results: dict[str, TaskResult] = {}
        self.events: dict[str, int] = {}
        self._arrived = asyncio.Event()
        self._sub: Any = None

    async def start(self) -> ResultCollector:
        """Subscribe to the result events of every task of the client's tenant."""

        async def on_result(msg: Msg) -> None:
            result = result_of(msg)
            if result is None:
                return
            self.events[result.task_id] = self.events.get(result.task_id, 0) + 1
            self.results.setdefault(result.task_id, result)
            self._arrived.set()

        self._sub = await self.client.bus.nc.subscribe(
            subjects.tenant_results(self.client.tenant), cb=on_result
        )
        await self.client.bus.nc.flush()
        return self

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def wait_all(
        self, task_ids: Iterable[str], timeout: float, *, progress: Progress | None = None
    ) -> dict[str, TaskResult]:
        """Wait until every id has a result (events, then the store for stragglers)."""
        wanted = set(task_ids)
        deadline = time.monotonic() + timeout
        last_poll = time.monotonic()
        reported = -1
        while True:
            missing = wanted - self.results.keys()
            if progress is not None and len(wanted) - len(missing) != reported:
                reported = len(wanted) - len(missing)
                progress(reported, len(wanted))
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
