"""The agent-worker service: registers, heartbeats its load, runs capability handlers."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from swarmhub import codec, isolation, metrics, subjects, telemetry, tracing
from swarmhub.app import load_app
from swarmhub.cache_client import CacheClient
from swarmhub.capabilities import Capability, CapabilityRegistry, builtins
from swarmhub.config import WorkerSettings
from swarmhub.errors import ErrorCode, NonRetryableError, ServiceError
from swarmhub.handlers import Runners, failure_text, run_in_child, runners
from swarmhub.isolation import ChildProcesses
from swarmhub.limits import cut
from swarmhub.runtime import Service
from swarmhub.schemas import (
    Ack,
    AgentRegistration,
    CancelRequest,
    Heartbeat,
    LeaveRequest,
    RegisterReply,
    RunBatch,
    RunReply,
    RunRequest,
    new_id,
)


class AgentWorker(Service):
    """Runs up to `concurrency` attempts at once on `hub.agent.<agent_id>.run`."""

    name: ClassVar[str] = "agent-worker"
    description: ClassVar[str] = "Runs capability handlers for dispatched tasks."

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        registry: CapabilityRegistry | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings or WorkerSettings()
        app_name = "builtins"
        if registry is None and self.settings.app:
            app = load_app(self.settings.app, self.settings.app_dir)
            registry, app_name = app.registry, app.name
        registry = registry or builtins
        if self.settings.capabilities:
            registry = registry.subset(
                [c.strip() for c in self.settings.capabilities.split(",") if c.strip()]
            )
        self.registry = registry
        self.agent_id = self.settings.agent_id or f"agent-{new_id()[:12]}"
        self.identity.metadata.update(
            {"agent_id": self.agent_id, "app": app_name, "capabilities": ",".join(registry.names())}
        )
        # Capabilities that cap their own runs at once wait here (within their attempt timeout).
        self._capability_slots = {
            cap.name: asyncio.Semaphore(cap.concurrency)
            for cap in registry.capabilities()
            if cap.concurrency is not None
        }
        self._isolated = [cap for cap in registry.capabilities() if cap.isolate]
        if self._isolated:
            isolation.preload(
                {run_in_child.__module__, *(c.handler.__module__ for c in self._isolated)}
            )
        self.runners = Runners(
            ThreadPoolExecutor(
                self.settings.concurrency, thread_name_prefix=f"capability-{self.agent_id}"
            ),
            ChildProcesses(),
        )
        """This agent's own threads (one per task slot) and child processes for sync functions."""
        self.log = self.log.bind(agent_id=self.agent_id)
        self.registered = asyncio.Event()
        """Set once the coordinator has accepted this agent's registration."""
        self.in_flight = 0
        self.completed = 0
        self.failed = 0
        self.draining = False
        self.memo_hits = 0
        self.busy = telemetry.RateLimited(10.0)  # BUSY answers: counted, summarised in the log
        self._background: set[asyncio.Task[bool]] = set()
        # Attempts running here by (tenant, task id), and those a cancel has stopped.
        self._running: dict[tuple[str | None, str], asyncio.Task[Any]] = {}
        self._cancel_requested: set[asyncio.Task[Any]] = set()
        self.heartbeat_interval = self.settings.heartbeat_interval
        # Above capacity so that excess requests get a quick BUSY instead of waiting.
        admit = self.settings.concurrency * 2 + 8
        self.add_endpoint(
            "run",
            subjects.agent_run(self.agent_id),
            RunRequest,
            self.run_task,
            concurrency=admit,
            template=subjects.TEMPLATES["run"],
        )
        self.add_endpoint(
            "batch",
            subjects.agent_batch(self.agent_id),
            RunBatch,
            self.run_task,
            concurrency=admit,
            template=subjects.TEMPLATES["batch"],
            batch=True,
        )
        self.add_endpoint(
            "cancel",
            subjects.agent_cancel(self.agent_id),
            CancelRequest,
            self.cancel_task,
            template=subjects.TEMPLATES["agent_cancel"],
        )
        metrics.WORKER_CAPACITY.set(self.settings.concurrency)

    async def setup(self) -> None:
        """Start the cache client, then register (in the background, retried) and heartbeat."""
        if self._isolated:
            try:
                await self.runners.processes.warm_up()
            except Exception as exc:  # those capabilities fail per attempt, saying why
                self.log.error("isolation_unavailable", reason=failure_text(exc))
        self.cache = CacheClient(
            self.bus,
            timeout=self.settings.cache_timeout,
            breaker_wait=self.settings.cache_breaker_wait,
            name=f"cache@{self.agent_id}",
        )
        await self.cache.start()
        self.spawn_loop(self._heartbeat_loop(), "heartbeat")

    async def teardown(self) -> None:
        """In-flight work is done: stop threads and children, leave the swarm, stop the cache."""
        await self.runners.close()
        try:
            await self.bus.request(
                subjects.swarm_leave(self.agent_id),
                LeaveRequest(agent_id=self.agent_id, final=True),
                Ack,
                timeout=1.0,
            )
        except ServiceError as exc:
            self.log.warning("leave_failed", reason=exc.message)  # expiry removes it instead
        await self.cache.stop()

    def stats_data(self) -> dict[str, Any]:
        """Load figures shown in $SRV.STATS."""
        return {
            "agent_id": self.agent_id,
            "in_flight": self.in_flight,
            "capacity": self.settings.concurrency,
            "completed": self.completed,
            "failed": self.failed,
            "draining": self.draining,
            "breakers": {self.cache.breaker.name: self.cache.breaker.snapshot()},
            "memo": {"hits": self.memo_hits, "bypassed": self.cache.bypassed},
            "isolated_children": len(self.runners.processes.pids()),
        }

    async def run_task(self, request: RunRequest) -> RunReply:
        """Run one attempt of a task with its per-attempt timeout."""
        task = request.task
        traced = tracing.sampled()  # (the request's span records: a sampled trace)
        if traced:
            tracing.annotate(
                task_id=task.id,
                capability=task.capability,
                attempt=request.attempt,
                agent_id=self.agent_id,
            )
        if self.in_flight >= self.settings.concurrency:
            # Several routers each respect our capacity on their own; together they can exceed
            # it. Answer at once rather than queue past the router's attempt timeout.
            if (count := self.busy.hit()) is not None:
                self.log.info(
                    "busy_rejections",
                    count=count,
                    task_id=task.id,
                    capacity=self.settings.concurrency,
                    note="at most one line per 10 s; the count covers the lines left out",
                )
            raise ServiceError(
                ErrorCode.BUSY,
                f"Agent {self.agent_id} is at its capacity of {self.settings.concurrency}.",
                retryable=True,
            )
        capability = self.registry.get(task.capability)
        if capability is None:
            raise ServiceError(
                ErrorCode.UNKNOWN_CAPABILITY,
                f"Agent {self.agent_id} has no capability {task.capability[:128]!r}; "
                f"it offers {self.registry.names()}.",
                retryable=True,
            )
        self.in_flight += 1
        metrics.WORKER_IN_FLIGHT.inc()
        started = time.perf_counter()
        status = "succeeded"
        memo_key = self._memo_key(task.capability, task.payload, capability.memoize)
        attempt_timeout = min(task.attempt_timeout, capability.timeout or task.attempt_timeout)
        last = _last_attempt_note(capability, request.attempt)
        current = asyncio.current_task()
        assert current is not None
        running = (request.tenant, task.id)
        self._running[running] = current
        try:
            if memo_key is not None:
                hit, value = await self.cache.get(subjects.MEMO_NAMESPACE, memo_key)
                if traced:
                    tracing.annotate(cache_hit=hit)
                if hit:
                    self.memo_hits += 1
                    ms = (time.perf_counter() - started) * 1000
                    return RunReply(output=value, cached=True, run_ms=ms)
            # asyncio.timeout runs the handler in this task; wait_for would start another. The
            # run's span keeps the traceback of an error; the caller's message does not.
            with tracing.child_span("run", task.capability):
                async with asyncio.timeout(attempt_timeout):
                    output = await self._call(capability, task.payload)
            if memo_key is not None:
                self._remember(memo_key, output)
            return RunReply(output=output, run_ms=(time.perf_counter() - started) * 1000)
        except asyncio.CancelledError:
            if current not in self._cancel_requested:
                raise
            self._cancel_requested.discard(current)
            current.uncancel()
            status = "cancelled"
            raise ServiceError(
                ErrorCode.CANCELLED,
                f"Task {task.id} was cancelled during attempt {request.attempt}.",
                retryable=False,
            ) from None
        except TimeoutError:
            status = "timed_out"
            raise ServiceError(
                ErrorCode.TIMEOUT,
                f"Capability {task.capability!r} ran past its attempt timeout "
                f"of {attempt_timeout:g} s.{last}",
                retryable=not last,
            ) from None
        except NonRetryableError as exc:
            status = "failed"
            raise ServiceError(ErrorCode.HANDLER_ERROR, cut(str(exc)), retryable=False) from None
        except ServiceError:
            status = "failed"
            raise
        except Exception as exc:
            status = "failed"
            raise ServiceError(
                ErrorCode.HANDLER_ERROR,
                cut(failure_text(exc)) + last,
                retryable=not last,
            ) from None
        finally:
            if self._running.get(running) is current:
                del self._running[running]
            self.in_flight -= 1
            metrics.WORKER_IN_FLIGHT.dec()
            metrics.child(metrics.WORKER_TASKS, task.capability, status).inc()
            if status == "succeeded":
                self.completed += 1
            else:
                self.failed += 1

    async def cancel_task(self, request: CancelRequest) -> None:
        """Stop the attempt of a cancelled task if it runs here (a sync function's thread runs on
        until it returns, its output dropped; an isolated one's child process is killed)."""
        running = self._running.get((request.tenant, request.task_id))
        if running is not None:
            self._cancel_requested.add(running)
            running.cancel()

    async def _call(self, capability: Capability, payload: dict[str, Any]) -> Any:
        """Run the handler on a copy of the payload, within the capability's own concurrency,
        its sync functions on this agent's runners."""
        token = runners.set(self.runners)
        try:
            slots = self._capability_slots.get(capability.name)
            if slots is None:
                return await capability.handler(dict(payload))
            async with slots:
                return await capability.handler(dict(payload))
        finally:
            runners.reset(token)

    def _memo_key(self, capability: str, payload: dict[str, Any], memoize: bool) -> str | None:
        if not (memoize and self.settings.memoize):
            return None
        return hashlib.sha256(capability.encode() + b"\0" + codec.pack(payload)).hexdigest()

    def _remember(self, key: str, output: Any) -> None:
        """Store a memoized output without making the caller wait for the cache."""
        task = asyncio.create_task(
            self.cache.set(subjects.MEMO_NAMESPACE, key, output, self.settings.memo_ttl)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _register(self) -> bool:
        registration = AgentRegistration(
            agent_id=self.agent_id,
            capabilities=self.registry.names(),
            capacity=self.settings.concurrency,
            proficiency=self.registry.proficiency(),
            pid=os.getpid(),
        )
        try:
            reply = await self.bus.request(
                subjects.swarm_register(self.agent_id), registration, RegisterReply, timeout=2.0
            )
        except ServiceError as exc:
            self.log.warning("register_failed", code=exc.code.value, reason=exc.message)
            return False
        self.heartbeat_interval = reply.heartbeat_interval
        self.log.info("registered", capabilities=registration.capabilities)
        self.registered.set()
        return True

    async def _heartbeat_loop(self) -> None:
        registered = False
        while not self.stopping.is_set():
            if not registered:
                registered = await self._register()
            else:
                beat = Heartbeat(
                    agent_id=self.agent_id,
                    capabilities=self.registry.names(),
                    capacity=self.settings.concurrency,
                    proficiency=self.registry.proficiency(),
                    pid=os.getpid(),
                    in_flight=self.in_flight,
                    completed=self.completed,
                    failed=self.failed,
                    draining=self.draining,
                )
                try:
                    await self.bus.publish(
                        subjects.swarm_heartbeat(self.agent_id),
                        beat,
                        template=subjects.TEMPLATES["heartbeat"],
                    )
                except Exception as exc:
                    self.log.warning("heartbeat_failed", reason=str(exc))
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=self.heartbeat_interval)
            except TimeoutError:
                pass

    async def begin_shutdown(self) -> None:
        """Drain first: routers stop choosing this agent but let its in-flight work finish."""
        self.draining = True
        try:
            await self.bus.request(
                subjects.swarm_leave(self.agent_id),
                LeaveRequest(agent_id=self.agent_id),
                Ack,
                timeout=1.0,
            )
            self.log.info("draining", in_flight=self.in_flight)
        except ServiceError as exc:
            self.log.warning("leave_failed", reason=exc.message)


def _last_attempt_note(capability: Capability, attempt: int) -> str:
    """A note for errors of the attempt the capability allows last ('' while retries remain)."""
    if capability.max_attempts is None or attempt < capability.max_attempts:
        return ""
    return f" (capability {capability.name!r} allows {capability.max_attempts} attempts)"
