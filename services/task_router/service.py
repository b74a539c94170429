"""The task-router: the one consumer of the task stream; dispatches, retries, records results."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from typing import Any, ClassVar

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from swarmhub import codec, metrics, provision, subjects, tracing
from swarmhub.bus import HDR_MSG_ID
from swarmhub.config import RouterSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import check_schedule, cut
from swarmhub.registry import count_alive
from swarmhub.runtime import Handler, Service
from swarmhub.schemas import (
    TOKEN_PATTERN,
    AgentRecord,
    CancelReply,
    CancelRequest,
    ErrorInfo,
    ResultStatus,
    StatusReply,
    StatusRequest,
    Task,
    TaskResult,
)
from swarmhub.task_router.attempts import Attempts
from swarmhub.task_router.backlog import backlog_loop
from swarmhub.task_router.cancels import Cancels
from swarmhub.task_router.decisions import Defer, Final, Retry, make_result
from swarmhub.task_router.figures import Backlog, RecentLatencies
from swarmhub.task_router.intake import Intake
from swarmhub.task_router.registry import AgentView
from swarmhub.task_router.results import DeadLetters, ResultStore, count_capabilities
from swarmhub.task_router.tenants import TenantGate, contention_loop, tenant_cap
from swarmhub.tracing import SpanKind

_TOKEN = re.compile(TOKEN_PATTERN)
CLOCK_SLACK = 5.0


class TaskRouter(Service):
    """Consumes HUB_TASKS through the lanes' shared durable consumers; one result per task."""

    name: ClassVar[str] = "task-router"
    description: ClassVar[str] = "Routes tasks from the stream to live agents."

    def __init__(self, settings: RouterSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or RouterSettings()
        self.view = AgentView()
        self.latencies = RecentLatencies()
        self.backlog = Backlog()
        # The subject names the asking tenant (its permissions allow its own only).
        endpoints: tuple[tuple[str, str, type[BaseModel], Handler], ...] = (
            ("status", subjects.TASK_STATUS_ALL, StatusRequest, self.status),
            ("cancel", subjects.TASK_CANCEL_ALL, CancelRequest, self.cancel),
        )
        for name, subject, model, handler in endpoints:
            template = subjects.TEMPLATES[name]
            self.add_endpoint(
                name, subject, model, handler, template=template, subject_key="tenant"
            )
        settings = self.settings
        cap = tenant_cap(settings.router_concurrency, settings.tenant_share)
        self.tenants = TenantGate(cap, settings.max_deliver)
        self.cancels = Cancels()
        # Tasks created before this router started may have been cancelled before it listened:
        # those are looked up in the result store first (the slack covers clock differences).
        self.listening_since = time.time() - CLOCK_SLACK

    # -- setup ------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Provision storage, start watching the registry, bind the lanes' durable consumers."""
        js = self.bus.js
        await provision.ensure_all(
            js, results_ttl=self.settings.results_ttl, replicas=self.settings.replicas
        )
        self.attempts = Attempts(self.bus, self.view, self.settings)
        await self.attempts.batches.start()
        self.results = ResultStore(self.bus, await js.key_value(subjects.RESULTS_BUCKET))
        self.dead = DeadLetters(self.bus, self.log)
        count_capabilities([metrics.OTHER])
        await self.bus.nc.subscribe(subjects.TASK_CANCELLED_ALL, cb=self._on_cancelled)
        agents = await js.key_value(subjects.AGENTS_BUCKET)
        self.spawn_loop(self._watch_registry(agents), "registry-watch")
        infos = await self._bind_consumers()
        # The server keeps the ack_wait of whoever created a consumer; keep alive by the shortest.
        ack_wait = min(float(info.config.ack_wait or self.settings.ack_wait) for info in infos)
        self.results.retry_for = max(10.0, ack_wait)
        self.intake = Intake(
            self.bus.nc,
            [
                (lane, subjects.consumer_next(subjects.TASK_STREAM, subjects.lane_consumer(lane)))
                for lane in subjects.LANES
            ],
            self._process,
            self.settings.router_concurrency,
            ack_wait,
            self.track,
            self.stopping,
            self.log,
            gate=self.tenants,
        )
        await self.intake.start()
        self.spawn_loop(self.intake.pull_loop(), "pull", drain=True)
        self.spawn_loop(self.intake.keepalive_loop(), "keepalive")
        self.spawn_loop(self._sweep_loop(), "sweep")
        self.spawn_loop(backlog_loop(self.bus, self.log, self.backlog), "backlog")
        self.spawn_loop(contention_loop(self.bus, self.tenants, self.log), "tenants")

    async def _bind_consumers(self) -> list[ConsumerInfo]:
        """Every lane's shared durable consumer, most urgent first.

        The normal lane goes first: its consumer keeps the name of the single consumer that
        routers before priority lanes shared (filter `hub.task.submit.>`), and narrowing that
        one in place to the normal lane's subjects is what lets the other lanes' consumers exist
        beside it (a work queue refuses overlapping filters). Its delivered and unacked messages
        stay where they are, so nothing is lost or run twice by the change.
        """
        order = sorted(subjects.LANES, key=lambda lane: lane != subjects.DEFAULT_LANE)
        bound = {lane: await self._bind_consumer(lane) for lane in order}
        return [bound[lane] for lane in subjects.LANES]

    async def _bind_consumer(self, lane: str) -> ConsumerInfo:
        """One lane's durable consumer, created (or narrowed) on first use by any router."""
        js = self.bus.js
        name = subjects.lane_consumer(lane)
        wanted = subjects.lane_filters(lane)
        try:
            found: ConsumerInfo = await js.consumer_info(subjects.TASK_STREAM, name)
        except NotFoundError:
            config = self._consumer_config(name, wanted)
        else:
            if _filters(found) == wanted:
                return found
            self.log.info("consumer_narrowed", consumer=name, was=_filters(found), to=wanted)
            # Same settings (some cannot change), these filters; no `name`, so that nats-py
            # updates it through DURABLE.CREATE rather than a subject holding the filter.
            config = dataclasses.replace(
                found.config, name=None, filter_subject=None, filter_subjects=wanted
            )
        try:
            created: ConsumerInfo = await js.add_consumer(subjects.TASK_STREAM, config)
        except BadRequestError:
            # Another router created it first (with other settings): use theirs.
            created = await js.consumer_info(subjects.TASK_STREAM, name)
        if _filters(created) != wanted:
            raise RuntimeError(
                f"Consumer {name} of {subjects.TASK_STREAM} takes "
                f"{_filters(created)!r}, not the {lane} lane's {wanted!r}, and could "
                "not be changed. See docs/ARCHITECTURE.md, Priority lanes, on migrating."
            )
        return created

    def _consumer_config(self, name: str, filter_subjects: list[str]) -> ConsumerConfig:
        """The config a router creates a lane's consumer with."""
        return ConsumerConfig(
            durable_name=name,
            filter_subjects=filter_subjects,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait,
            # JetStream never stops delivering on its own (a message past max_deliver would
            # stay in the work queue, raising only an advisory); the router dead-letters at
            # delivery SWARMHUB_MAX_DELIVER itself, so no message can get stuck unseen.
            max_deliver=-1,
            max_ack_pending=20_000,
        )

    async def _sweep_loop(self) -> None:
        """Forget dispatch batches whose attempts all ended (some never get an answer)."""
        while True:
            await asyncio.sleep(2.0)
            self.attempts.batches.sweep()

    def reconnected(self) -> None:
        """Pull requests are lost with the connection: ask again."""
        if hasattr(self, "intake"):
            self.intake.reconnected()

    async def teardown(self) -> None:
        """Stop receiving pulled messages and answers before the connection drains."""
        await self.intake.stop()
        await self.attempts.batches.stop()

    def stats_data(self) -> dict[str, Any]:
        """Throughput and latency figures shown in $SRV.STATS and `swarmhub up`."""
        by_status = self.results.by_status if hasattr(self, "results") else {}
        return {
            "completed": sum(by_status.values()),
            "by_status": dict(by_status),
            "in_flight": len(self.intake.held) if hasattr(self, "intake") else 0,
            "agents": len(self.view.agents),
            "p95_ms": self.latencies.p95(),
            "p95_window_s": self.latencies.window,
            "backlog": dataclasses.asdict(self.backlog),
            "breakers": self.attempts.breakers.snapshot() if hasattr(self, "attempts") else {},
            # Counts only: $SRV.STATS is open to every client, tenants' names are not.
            "tenants": {"contended": self.tenants.contended, "handbacks": self.tenants.handbacks},
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
                    if self.stopping.is_set():
                        break
                    if entry is None:
                        continue
                    if entry.operation in ("DEL", "PURGE"):
                        self.attempts.agent_gone(entry.key)
                    else:
                        try:
                            record = self.bus.decode(entry.value or b"", AgentRecord)
                        except ServiceError as exc:
                            self.log.warning(
                                "bad_registry_entry", key=entry.key, reason=exc.message
                            )
                            continue
                        self.view.upsert(record)
                        count_capabilities(record.capabilities)
                    metrics.AGENTS_ALIVE.set(count_alive(self.view.agents.values()))
            except Exception as exc:
                self.log.warning("registry_watch_restart", reason=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]

    # -- one task ---------------------------------------------------------------------------

    async def _process(self, msg: Msg, lane: str, tenant: str) -> None:
        """Decode once, run the attempt, record the outcome, then ack."""
        header_id = (msg.headers or {}).get(HDR_MSG_ID)
        with tracing.process_span(
            subjects.submit_template(lane),
            msg.headers,
            SpanKind.CONSUMER,
            header_id,
            len(msg.data),
            msg.subject,
        ):
            await self._process_traced(msg, header_id, lane, tenant)

    async def _process_traced(
        self, msg: Msg, header_id: str | None, lane: str, tenant: str
    ) -> None:
        # `tenant` is who submitted it (from the subject, as intake read it): the server vouched
        # for it by letting them publish there.
        meta = msg.metadata
        capability = subjects.capability_of(msg.subject)
        try:
            _check_tenant(tenant, msg.subject)
            task, raw = self._decode(msg, capability)
        except ServiceError as exc:
            task_id = _header_task_id(tenant, header_id) if _TOKEN.match(tenant) else None
            await self._reject(msg, tenant, task_id, capability, exc)
            return
        key = subjects.result_key(tenant, task.id)
        delivered = self.tenants.deliveries(meta.sequence.stream, meta.num_delivered)
        if key in self.cancels or (
            (delivered > 1 or task.created_at < self.listening_since)
            and await self.results.exists(tenant, task.id)
        ):
            await msg.ack()  # finished or cancelled already
            return
        if delivered >= self.settings.max_deliver:
            error = ErrorInfo(
                code=ErrorCode.ATTEMPTS_EXHAUSTED,
                message=f"Delivered {delivered} times without a result.",
            )
            await self.dead.send(msg, task.id, capability, error, attempts=0)
            await self._finish(
                msg,
                tenant,
                make_result(task, ResultStatus.DEAD_LETTERED, time.time(), error=error),
            )
            return
        queued_at = meta.timestamp.timestamp() if meta.timestamp else time.time()
        current = self.cancels.hold(key)
        try:
            outcome = await self.attempts.run(task, raw, queued_at, lane, tenant)
        except asyncio.CancelledError:
            if not self.cancels.stopped(current):
                raise
            await msg.ack()  # cancelled while held: its `cancelled` result is already stored
            return
        finally:
            self.cancels.release(key, current)
        if isinstance(outcome, Defer):
            await msg.nak(delay=outcome.delay)
            return
        if isinstance(outcome, Retry):
            try:
                # The retry is a new stream message (its own dedupe id) in the lane the task came
                # from; the original is acked.
                await self.bus.js_publish(
                    subjects.task_submit(tenant, task.capability, lane),
                    outcome.task,
                    # Dedupe per tenant as submits, tagged with the routers' own key (they share
                    # one user) so that no tenant can write a retry's id before it is sent.
                    msg_id=subjects.tagged_id(f"{tenant}.{outcome.msg_id}", self.bus.dedupe_key),
                    template=subjects.submit_template(lane),
                )
            except ServiceError as exc:
                if exc.code is not ErrorCode.TOO_LARGE:
                    raise
                # Retry state would push the task over the limit: end it with the last error.
                error = outcome.task.last_error or ErrorInfo(code=exc.code, message=exc.message)
                outcome = Final(
                    make_result(
                        task,
                        ResultStatus.FAILED,
                        time.time(),
                        error=error,
                        attempts=task.attempt + 1,
                    )
                )
            else:
                metrics.TASK_RETRIES.labels(metrics.capabilities(task.capability)).inc()
                if task.progress:
                    await self.attempts.progress(
                        tenant, task, "retrying", task.attempt + 1, error=outcome.task.last_error
                    )
                await msg.ack()
                return
        if outcome.dead_letter and outcome.result.error is not None:
            attempts = outcome.result.attempts
            await self.dead.send(msg, task.id, capability, outcome.result.error, attempts)
        await self._finish(msg, tenant, outcome.result)

    def _decode(self, msg: Msg, capability: str) -> tuple[Task, dict[str, Any]]:
        """The task and its raw fields, checked against its subject and the size limits."""
        raw = codec.unpack_map(msg.data, Task, max_bytes=self.bus.limits.body)
        task = codec.validate(raw, Task)
        if task.capability != capability:
            raise ServiceError(
                ErrorCode.INVALID_TASK,
                f"Task capability {task.capability[:128]!r} does not match its subject "
                f"{msg.subject[:200]!r}.",
            )
        self.bus.limits.check_task(len(msg.data), retried=task.attempt > 0)
        if "id" not in raw:
            raise ServiceError(
                ErrorCode.INVALID_TASK,
                "Task has no 'id': give every task one (1-128 of A-Z a-z 0-9 _ -) so that its "
                "result can be found.",
            )
        check_schedule(task, time.time(), self.settings.not_before_horizon)
        return task, raw

    async def _reject(
        self, msg: Msg, tenant: str, task_id: str | None, capability: str, exc: ServiceError
    ) -> None:
        """A task that cannot run as sent: dead-letter it on its first delivery, with the reason."""
        # Cut: a message naming hundreds of bad fields must not fail the rejection itself.
        error = ErrorInfo(code=ErrorCode.INVALID_TASK, message=cut(f"Rejected task: {exc.message}"))
        await self.dead.send(msg, task_id, capability, error, attempts=0)
        if task_id:
            result = TaskResult(
                task_id=task_id,
                capability=capability[:128],
                status=ResultStatus.DEAD_LETTERED,
                error=error,
            )
            await self._finish(msg, tenant, result)
        else:
            await msg.ack()

    async def _finish(self, msg: Msg, tenant: str, result: TaskResult) -> None:
        """Record a tenant's task's one final result (first writer wins), announce it, then ack."""
        if await self.results.record(tenant, result):
            self.latencies.add(result.timings.total_ms)
        await msg.ack()

    # -- endpoints --------------------------------------------------------------------------

    async def cancel(self, req: CancelRequest) -> CancelReply:
        """Cancel one of the asking tenant's tasks: store its `cancelled` result unless it has
        one, then tell every router.

        The id is taken even if no task with it was submitted yet: one submitted later never runs.
        """
        tenant = req.tenant or subjects.OPEN_TENANT
        error = ErrorInfo(code=ErrorCode.CANCELLED, message="Cancelled by request.")
        result = TaskResult(task_id=req.task_id, status=ResultStatus.CANCELLED, error=error)
        if not await self.results.record(tenant, result):
            stored = await self.results.get(tenant, req.task_id)
            return CancelReply(task_id=req.task_id, state="finished", result=stored or result)
        await self.bus.publish(
            subjects.task_cancelled(tenant, req.task_id),
            b"",
            template=subjects.TEMPLATES["cancelled"],
        )
        return CancelReply(task_id=req.task_id, state="cancelled", result=result)

    async def _on_cancelled(self, msg: Msg) -> None:
        """A task was cancelled: never start it; stop it (and its agent's attempt) if held here."""
        tenant, task_id = subjects.scoped_of(msg.subject)
        held = self.cancels.add(subjects.result_key(tenant, task_id))
        if held is None:
            return
        agent_id = self.attempts.agent_of(tenant, task_id)
        if agent_id is not None:
            with contextlib.suppress(ServiceError):
                await self.bus.publish(
                    subjects.agent_cancel(agent_id),
                    CancelRequest(task_id=task_id, tenant=tenant),
                    template=subjects.TEMPLATES["agent_cancel"],
                )
        held.cancel()

    async def status(self, req: StatusRequest) -> StatusReply:
        """The stored result of one of the asking tenant's tasks, if it has one."""
        result = await self.results.get(req.tenant or subjects.OPEN_TENANT, req.task_id)
        if result is None:
            return StatusReply(task_id=req.task_id, state="unknown")
        return StatusReply(task_id=req.task_id, state="done", result=result)


def _filters(info: ConsumerInfo) -> list[str]:
    """The subjects a consumer takes (one filter or several)."""
    config = info.config
    return list(
        config.filter_subjects or ([config.filter_subject] if config.filter_subject else [])
    )


def _check_tenant(tenant: str, subject: str) -> None:
    """Refuse a task whose subject's tenant token is no valid tenant (only open mode lets anyone
    publish one: a user's permissions hold its own name, always a valid token)."""
    if not _TOKEN.match(tenant):
        raise ServiceError(
            ErrorCode.INVALID_TASK,
            f"The tenant of subject {subject[:200]!r} is not 1-128 of A-Z a-z 0-9 _ -: its "
            "result could not be kept.",
        )


def _header_task_id(tenant: str, header_id: str | None) -> str | None:
    """The task id a submit's Nats-Msg-Id names (`<tenant>.<task id>[.<tag>]`, or a bare id),
    if valid; an id under another tenant's name names none."""
    if header_id is None:
        return None
    if header_id.startswith(f"{tenant}."):
        header_id = header_id[len(tenant) + 1 :].split(".", 1)[0]
    return header_id if _TOKEN.match(header_id) else None
