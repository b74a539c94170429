"""The task-router: the one consumer of the task stream; dispatches, retries, records results."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import re
import time
from typing import Any, ClassVar

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from swarmhub import codec, metrics, provision, subjects
from swarmhub.breaker import (
    BreakerConfig,
    BreakerRegistry,
    CircuitOpenError,
    CircuitState,
    telemetry_listener,
)
from swarmhub.bus import HDR_MSG_ID, extract_context, make_headers, span_attributes
from swarmhub.config import RouterSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.runtime import Service
from swarmhub.schemas import (
    TOKEN_PATTERN,
    AgentRecord,
    DeadLetter,
    ErrorInfo,
    ResultStatus,
    RunReply,
    RunRequest,
    StatusReply,
    StatusRequest,
    Task,
    TaskResult,
    Timings,
)
from task_router.registry import AgentView

_TOKEN = re.compile(TOKEN_PATTERN)
# Errors that say the agent, not the task, is unwell: these count against its breaker.
AGENT_FAULTS = frozenset(
    {ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL, ErrorCode.BUSY}
)
FETCH_BATCH = 64
tracer = trace.get_tracer("swarmhub.router")


def _error(exc: ServiceError) -> ErrorInfo:
    return ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable)


class TaskRouter(Service):
    """Consumes HUB_TASKS through a shared durable consumer and records one result per task."""

    name: ClassVar[str] = "task-router"
    description: ClassVar[str] = "Routes tasks from the stream to live agents."

    def __init__(self, settings: RouterSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or RouterSettings()
        self.view = AgentView()
        self.breakers = BreakerRegistry(
            BreakerConfig(
                window_type="count",
                window_size=self.settings.breaker_window,
                minimum_calls=min(self.settings.breaker_min_calls, self.settings.breaker_window),
                failure_rate_threshold=self.settings.breaker_failure_rate,
                slow_call_duration_threshold=3600.0,
                wait_in_open=self.settings.breaker_wait,
                permitted_calls_in_half_open=self.settings.breaker_half_open_calls,
            ),
            listeners=[telemetry_listener],
        )
        self.slots = asyncio.Semaphore(self.settings.router_concurrency)
        self.held: dict[int, Msg] = {}
        self.dispatches: dict[str, set[asyncio.Task[RunReply]]] = {}
        self.by_status: collections.Counter[str] = collections.Counter()
        self.latencies: collections.deque[float] = collections.deque(maxlen=2000)
        self._results: KeyValue | None = None
        self.ack_wait = self.settings.ack_wait
        self.add_endpoint("status", subjects.TASK_STATUS, StatusRequest, self.status)

    # -- setup ------------------------------------------------------------------------------

    @property
    def results(self) -> KeyValue:
        """The results bucket."""
        assert self._results is not None, "setup() has not run"
        return self._results

    async def setup(self) -> None:
        """Provision storage, start watching the registry, bind the durable consumer."""
        js = self.bus.js
        await provision.ensure_all(
            js, results_ttl=self.settings.results_ttl, replicas=self.settings.replicas
        )
        self._results = await js.key_value(subjects.RESULTS_BUCKET)
        agents = await js.key_value(subjects.AGENTS_BUCKET)
        self.spawn_loop(self._watch_registry(agents), "registry-watch")
        self.consumer = await js.pull_subscribe(
            subjects.TASK_SUBMIT_ALL,
            durable=subjects.ROUTER_CONSUMER,
            stream=subjects.TASK_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.settings.ack_wait,
                # JetStream never stops delivering on its own (a message past max_deliver would
                # stay in the work queue, raising only an advisory); the router dead-letters at
                # delivery SWARMHUB_MAX_DELIVER itself, so no message can get stuck unseen.
                max_deliver=-1,
                max_ack_pending=20_000,
            ),
        )
        # The server keeps the ack_wait of whoever created the consumer; keep alive by that.
        info = await self.consumer.consumer_info()
        self.ack_wait = float(info.config.ack_wait or self.settings.ack_wait)
        self.spawn_loop(self._fetch_loop(), "fetch", drain=True)
        self.spawn_loop(self._keepalive_loop(), "keepalive")

    async def teardown(self) -> None:
        """Release the consumer binding before the connection drains."""
        with contextlib.suppress(Exception):
            await self.consumer.unsubscribe()

    def stats_data(self) -> dict[str, Any]:
        """Throughput and latency figures shown in $SRV.STATS and `swarmhub up`."""
        lat = sorted(self.latencies)
        p95 = lat[int(0.95 * (len(lat) - 1))] if lat else None
        return {
            "completed": sum(self.by_status.values()),
            "by_status": dict(self.by_status),
            "in_flight": len(self.held),
            "agents": len(self.view.agents),
            "p95_ms": p95,
            "breakers": self.breakers.snapshot(),
        }

    # -- registry ---------------------------------------------------------------------------

    async def _watch_registry(self, kv: KeyValue) -> None:
        while not self.stopping.is_set():
            try:
                watcher = await kv.watchall()
            except Exception as exc:
                self.log.warning("registry_watch_failed", reason=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            try:
                async for entry in watcher:
                    if entry is None or self.stopping.is_set():
                        if self.stopping.is_set():
                            break
                        continue
                    if entry.operation in ("DEL", "PURGE"):
                        await self._agent_gone(entry.key)
                    else:
                        try:
                            record = codec.decode(entry.value or b"", AgentRecord)
                        except ServiceError as exc:
                            self.log.warning(
                                "bad_registry_entry", key=entry.key, reason=exc.message
                            )
                            continue
                        await self.view.upsert(record)
                    metrics.AGENTS_ALIVE.set(len(self.view.agents))
            except Exception as exc:
                self.log.warning("registry_watch_restart", reason=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]

    async def _agent_gone(self, agent_id: str) -> None:
        await self.view.remove(agent_id)
        self.breakers.remove(agent_id)
        for dispatch in list(self.dispatches.get(agent_id, ())):
            dispatch.cancel()

    # -- intake -----------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
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
                self.track(self._handle_task(msg))

    async def _keepalive_loop(self) -> None:
        """Tell JetStream that held messages are still being worked on."""
        interval = max(0.2, self.ack_wait / 3)
        while True:
            for msg in list(self.held.values()):
                try:
                    await msg.in_progress()
                except Exception:
                    pass
            await asyncio.sleep(interval)

    async def _handle_task(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        self.held[seq] = msg
        metrics.ROUTER_IN_FLIGHT.set(len(self.held))
        template = subjects.TEMPLATES["submit"]
        try:
            with tracer.start_as_current_span(
                f"process {template}",
                context=extract_context(msg.headers),
                kind=SpanKind.CONSUMER,
                attributes=span_attributes(
                    template, "process", (msg.headers or {}).get(HDR_MSG_ID), len(msg.data)
                ),
            ):
                await self._process(msg)
        except asyncio.CancelledError:
            # Cancelled at the drain deadline: hand it back now rather than after ack_wait.
            with contextlib.suppress(Exception):
                await asyncio.shield(msg.nak())
            raise
        except Exception as exc:
            # Not acked: JetStream redelivers it, and the result stays idempotent by task id.
            self.log.warning("task_unfinished", seq=seq, reason=f"{type(exc).__name__}: {exc}")
            try:
                await msg.nak(delay=1.0)
            except Exception:
                pass
        finally:
            self.held.pop(seq, None)
            metrics.ROUTER_IN_FLIGHT.set(len(self.held))
            self.slots.release()

    async def _process(self, msg: Msg) -> None:
        meta = msg.metadata
        capability = subjects.capability_of(msg.subject)
        header_id = (msg.headers or {}).get(HDR_MSG_ID)
        task_id = header_id if header_id and _TOKEN.match(header_id) else None
        try:
            task = codec.decode(msg.data, Task, max_bytes=self.bus_settings.max_body_bytes)
            if task.capability != capability:
                raise ServiceError(
                    ErrorCode.INVALID_TASK,
                    f"Task capability {task.capability!r} does not match its subject "
                    f"{msg.subject!r}.",
                )
        except ServiceError as exc:
            error = ErrorInfo(code=ErrorCode.INVALID_TASK, message=f"Rejected task: {exc.message}")
            await self._dead_letter(msg, task_id, capability, error, attempts=0)
            if task_id:
                await self._finish(
                    msg,
                    TaskResult(
                        task_id=task_id,
                        capability=capability,
                        status=ResultStatus.DEAD_LETTERED,
                        error=error,
                    ),
                )
            else:
                await msg.ack()
            return
        if meta.num_delivered > 1 and await self._has_result(task.id):
            await msg.ack()
            return
        if meta.num_delivered >= self.settings.max_deliver:
            error = ErrorInfo(
                code=ErrorCode.ATTEMPTS_EXHAUSTED,
                message=f"Delivered {meta.num_delivered} times without a result.",
            )
            await self._dead_letter(msg, task.id, capability, error, attempts=0)
            await self._finish(msg, self._result(task, ResultStatus.DEAD_LETTERED, error=error))
            return
        result = await self._run(task, msg)
        if result is None:
            await msg.ack()  # the next attempt is in the stream now
        else:
            await self._finish(msg, result)

    # -- attempts ---------------------------------------------------------------------------

    def _result(self, task: Task, status: ResultStatus, **fields: Any) -> TaskResult:
        finished = time.time()
        timings: Timings = fields.pop("timings", None) or Timings(
            total_ms=(finished - task.created_at) * 1000
        )
        return TaskResult(
            task_id=task.id,
            capability=task.capability,
            status=status,
            finished_at=finished,
            timings=timings,
            **fields,
        )

    async def _run(self, task: Task, msg: Msg) -> TaskResult | None:
        """One attempt of `task`; returns its final result, or None when a retry was queued."""
        if task.not_before is not None and task.not_before > time.time():
            await self._sleep_until(task.not_before, task.deadline)
        tried = set(task.tried_agents)
        rejected: set[str] = set()
        waiting_since: float | None = None
        while True:
            if task.deadline is not None and time.time() >= task.deadline:
                last = task.last_error
                error = ErrorInfo(
                    code=ErrorCode.DEADLINE_EXCEEDED,
                    message="Task missed its deadline"
                    + (
                        f" after {task.attempt} attempts; last error: {last.message}"
                        if last
                        else ""
                    )
                    + ".",
                )
                await self._dead_letter(msg, task.id, task.capability, error, task.attempt)
                return self._result(
                    task, ResultStatus.TIMED_OUT, error=error, attempts=task.attempt
                )
            agent = self.view.pick(
                task.capability, tried, task.affinity, allowed=self._breaker_allows
            )
            if agent is not None and agent.agent_id in rejected:
                agent = None
            if agent is None:
                if not self.view.has_capability(task.capability):
                    waiting_since = waiting_since or time.monotonic()
                    if time.monotonic() - waiting_since >= self.settings.no_agent_wait:
                        error = ErrorInfo(
                            code=ErrorCode.NO_AGENT,
                            message=f"No live agent offers capability {task.capability!r} "
                            f"(waited {self.settings.no_agent_wait:g} s).",
                        )
                        await self._dead_letter(msg, task.id, task.capability, error, task.attempt)
                        return self._result(
                            task, ResultStatus.DEAD_LETTERED, error=error, attempts=task.attempt
                        )
                budget = 0.5 if rejected else 1.0
                if task.deadline is not None:
                    budget = min(budget, task.deadline - time.time())
                rejected.clear()
                await self.view.wait_for_change(budget)
                continue
            waiting_since = None
            breaker = self.breakers.get(agent.agent_id)
            try:
                permit = breaker.acquire_permission()
            except CircuitOpenError:
                rejected.add(agent.agent_id)
                continue
            attempt = task.attempt + 1
            dispatched = time.time()
            started = time.perf_counter()
            try:
                reply = await self._dispatch(agent, task, attempt)
            except ServiceError as exc:
                elapsed = time.perf_counter() - started
                if exc.code is ErrorCode.BUSY:
                    # Full, not faulty: not an attempt, not a breaker failure; try another.
                    breaker.release_permission(permit)
                    rejected.add(agent.agent_id)
                    continue
                if exc.code in AGENT_FAULTS:
                    breaker.on_error(elapsed, exc, permit=permit)
                else:
                    breaker.on_success(elapsed, permit=permit)
                return await self._after_failure(task, msg, agent.agent_id, attempt, exc)
            except BaseException:
                breaker.release_permission(permit)
                raise
            breaker.on_success(time.perf_counter() - started, permit=permit)
            finished = time.time()
            return self._result(
                task,
                ResultStatus.SUCCEEDED,
                output=reply.output,
                cached=reply.cached,
                agent_id=agent.agent_id,
                attempts=attempt,
                timings=Timings(
                    queued_ms=(dispatched - task.created_at) * 1000,
                    run_ms=reply.run_ms,
                    total_ms=(finished - task.created_at) * 1000,
                ),
            )

    async def _after_failure(
        self, task: Task, msg: Msg, agent_id: str, attempt: int, exc: ServiceError
    ) -> TaskResult | None:
        """Final result for a hopeless failure, else queue the next attempt in the stream."""
        error = ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable)
        if not exc.retryable or attempt >= task.max_attempts:
            if attempt > 1:
                error = error.model_copy(
                    update={"message": f"{exc.message} (after {attempt} attempts)"}
                )
            if exc.retryable:
                await self._dead_letter(msg, task.id, task.capability, error, attempt)
            status = (
                ResultStatus.TIMED_OUT if exc.code is ErrorCode.TIMEOUT else ResultStatus.FAILED
            )
            return self._result(task, status, error=error, attempts=attempt, agent_id=agent_id)
        backoff = min(
            self.settings.retry_backoff_max, self.settings.retry_backoff * 2 ** (attempt - 1)
        ) * random.uniform(0.5, 1.5)
        retry = task.model_copy(
            update={
                "attempt": attempt,
                "last_error": error,
                "not_before": time.time() + backoff,
                "tried_agents": [*task.tried_agents, agent_id][-16:],
            }
        )
        # The retry is a new stream message (its own dedupe id); the original is acked after.
        await self.bus.js_publish(
            subjects.task_submit(task.capability),
            retry,
            msg_id=f"{task.id}.a{attempt}",
            template=subjects.TEMPLATES["submit"],
        )
        metrics.TASK_RETRIES.labels(task.capability).inc()
        self.log.debug("retry_queued", task_id=task.id, attempt=attempt, code=exc.code.value)
        return None

    async def _sleep_until(self, when: float, deadline: float | None) -> None:
        """Wait for a retry's backoff; the keepalive loop keeps the message ours meanwhile."""
        target = min(when, deadline) if deadline is not None else when
        delay = target - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _breaker_allows(self, agent_id: str) -> bool:
        return agent_id not in self.breakers or (
            self.breakers.get(agent_id).state is not CircuitState.OPEN
        )

    async def _dispatch(self, agent: AgentRecord, task: Task, attempt: int) -> RunReply:
        timeout = task.attempt_timeout + 1.0
        if task.deadline is not None:
            timeout = max(0.05, min(timeout, task.deadline - time.time()))
        self.view.acquire(agent.agent_id)
        started = time.perf_counter()
        request = asyncio.create_task(
            self.bus.request(
                subjects.agent_run(agent.agent_id),
                RunRequest(task=task, attempt=attempt),
                RunReply,
                timeout=timeout,
                template=subjects.TEMPLATES["run"],
            )
        )
        pending = self.dispatches.setdefault(agent.agent_id, set())
        pending.add(request)
        try:
            return await request
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"Agent {agent.agent_id} went away during attempt {attempt}.",
                retryable=True,
            ) from None
        finally:
            pending.discard(request)
            if not pending:
                self.dispatches.pop(agent.agent_id, None)
            await self.view.release(agent.agent_id)
            metrics.DISPATCH_DURATION.labels(task.capability).observe(time.perf_counter() - started)

    # -- results ----------------------------------------------------------------------------

    async def _has_result(self, task_id: str) -> bool:
        try:
            await self.results.get(task_id)
            return True
        except KeyNotFoundError:
            return False

    async def _finish(self, msg: Msg, result: TaskResult) -> None:
        """Record the one final result (first writer wins), announce it, then ack."""
        try:
            data = codec.encode(result, max_bytes=self.bus_settings.max_body_bytes)
        except ServiceError as exc:  # an output too large to store still needs a final result
            result = result.model_copy(
                update={
                    "status": ResultStatus.FAILED,
                    "output": None,
                    "error": ErrorInfo(
                        code=exc.code, message=f"Task output rejected: {exc.message}"
                    ),
                }
            )
            data = codec.encode(result)
        created = await self._create_result(result.task_id, data)
        if created:
            await self.bus.nc.publish(
                subjects.task_result(result.task_id), data, headers=make_headers()
            )
            self.by_status[result.status.value] += 1
            self.latencies.append(result.timings.total_ms)
            metrics.TASKS_COMPLETED.labels(result.capability, result.status.value).inc()
            metrics.TASK_DURATION.labels(result.capability).observe(result.timings.total_ms / 1000)
            self.log.debug(
                "task_done",
                task_id=result.task_id,
                status=result.status.value,
                attempts=result.attempts,
                ms=round(result.timings.total_ms, 1),
            )
        await msg.ack()

    async def _create_result(self, task_id: str, data: bytes) -> bool:
        """Create-only write, retried in place (the message stays held) while the store is away."""
        delay = 0.1
        deadline = time.monotonic() + max(10.0, self.ack_wait)
        while True:
            try:
                await self.results.create(task_id, data)
                return True
            except KeyWrongLastSequenceError:
                return False
            except Exception:
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def _dead_letter(
        self, msg: Msg, task_id: str | None, capability: str, error: ErrorInfo, attempts: int
    ) -> None:
        """Copy the original task into the dead-letter stream before it leaves the task stream."""
        seq = msg.metadata.sequence.stream
        # An oversize body cannot be copied whole into a message of the same size limit.
        room = self.bus_settings.max_body_bytes // 2
        letter = DeadLetter(
            task_id=task_id,
            capability=capability,
            subject=msg.subject,
            error=error,
            attempts=attempts,
            body=msg.data[:room],
            body_truncated=len(msg.data) > room,
            first_seen=msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else None,
        )
        await self.bus.js_publish(
            subjects.task_dead(capability),
            letter,
            msg_id=f"dead-{task_id or 'seq'}-{seq}",
            template=subjects.TEMPLATES["dead"],
        )
        metrics.DEAD_LETTERS.labels(capability, error.code.value).inc()
        self.log.info(
            "dead_lettered", task_id=task_id, capability=capability, code=error.code.value
        )

    # -- endpoints --------------------------------------------------------------------------

    async def status(self, req: StatusRequest) -> StatusReply:
        """The stored result of a task, if it has one."""
        try:
            entry = await self.results.get(req.task_id)
        except KeyNotFoundError:
            return StatusReply(task_id=req.task_id, state="unknown")
        return StatusReply(
            task_id=req.task_id,
            state="done",
            result=codec.decode(entry.value or b"", TaskResult),
        )
