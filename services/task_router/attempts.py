"""Attempts: pick an agent, pass its breaker, dispatch one attempt, return its outcome."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Literal

from swarmhub import codec, metrics, subjects, tracing
from swarmhub.batching import BatchDispatcher
from swarmhub.breaker import (
    BreakerConfig,
    BreakerRegistry,
    CircuitOpenError,
    CircuitState,
    forget_breaker_metric,
    telemetry_listener,
)
from swarmhub.bus import Bus
from swarmhub.config import RouterSettings
from swarmhub.errors import ErrorCode, NoResponders, ServiceError
from swarmhub.schemas import ErrorInfo, ResultStatus, RunReply, Task, TaskProgress, Timings
from swarmhub.task_router.decisions import (
    Defer,
    Final,
    Outcome,
    after_failure,
    attempt_timeout,
    deadline_error,
    defer_for,
    is_agent_fault,
    make_result,
    no_agent_result,
)
from swarmhub.task_router.lanes import RANKS
from swarmhub.task_router.registry import AgentView
from swarmhub.waits import within

FAILING_PENALTY = 3.0
"""An agent whose recent calls all failed looks (1 + this) times as loaded as a healthy one."""


class AgentGone(Exception):
    """Raised inside a dispatch whose agent left the registry."""


class Attempts:
    """Runs one attempt of a task on the best agent for it, within breakers and deadlines."""

    def __init__(self, bus: Bus, view: AgentView, settings: RouterSettings) -> None:
        self.bus = bus
        self.view = view
        self.settings = settings
        self.breakers = BreakerRegistry(
            BreakerConfig(
                window_type="count",
                window_size=settings.breaker_window,
                minimum_calls=min(settings.breaker_min_calls, settings.breaker_window),
                failure_rate_threshold=settings.breaker_failure_rate,
                slow_call_duration_threshold=3600.0,
                wait_in_open=settings.breaker_wait,
                permitted_calls_in_half_open=settings.breaker_half_open_calls,
            ),
            listeners=[telemetry_listener],
        )
        self.batches = BatchDispatcher(bus, subjects.agent_batch)
        # Slots waiting for an agent to appear; past the cap such tasks are deferred instead.
        self.waiting = 0
        self.wait_cap = max(1, settings.router_concurrency // 4)
        # Dispatches per agent, so that an agent leaving ends its attempts at once.
        self.dispatches: dict[str, set[asyncio.Task[Any]]] = {}
        self._gone: set[asyncio.Task[Any]] = set()
        # The agent running each dispatched task (by result key), so a cancel can reach it.
        self._running_on: dict[str, str] = {}

    def agent_of(self, tenant: str, task_id: str) -> str | None:
        """The agent running an attempt of `tenant`'s task `task_id` right now, if any."""
        return self._running_on.get(subjects.result_key(tenant, task_id))

    async def progress(
        self,
        tenant: str,
        task: Task,
        state: Literal["running", "retrying", "waiting"],
        attempt: int = 0,
        agent_id: str | None = None,
        error: ErrorInfo | None = None,
    ) -> None:
        """Tell whoever follows a task (it asked, with Task.progress) where it is; best effort."""
        event = TaskProgress(
            task_id=task.id, state=state, attempt=attempt, agent_id=agent_id, error=error
        )
        with contextlib.suppress(ServiceError):
            await self.bus.publish(
                subjects.task_progress(tenant, task.id),
                event,
                template=subjects.TEMPLATES["progress"],
            )

    def agent_gone(self, agent_id: str) -> None:
        """Forget an agent: drop its breaker (and its metric) and end the attempts waiting on it."""
        self.view.remove(agent_id)
        self.breakers.remove(agent_id)
        forget_breaker_metric(agent_id)
        for task in self.dispatches.pop(agent_id, ()):
            self._gone.add(task)
            task.cancel()

    def _failing_penalty(self, agent_id: str) -> float:
        """How much more loaded an agent looks for failing lately (its breaker still closed):
        1 for none, up to 1 + FAILING_PENALTY when every call in its window failed."""
        if agent_id not in self.breakers:
            return 1.0
        return 1.0 + FAILING_PENALTY * self.breakers.get(agent_id).failure_rate() / 100.0

    def _breaker_allows(self, agent_id: str) -> bool:
        return agent_id not in self.breakers or (
            self.breakers.get(agent_id).state is not CircuitState.OPEN
        )

    async def run(
        self,
        task: Task,
        raw: dict[str, Any],
        queued_at: float,
        lane: str = subjects.DEFAULT_LANE,
        tenant: str = subjects.OPEN_TENANT,
    ) -> Outcome:
        """One attempt of `task` (`raw` is its decoded body, `queued_at` when its message was
        stored, `lane` the priority lane it came from, `tenant` who submitted it): a final
        result, a retry, or a deferral that frees the slot."""
        traced = tracing.sampled()  # (the consumer span records: a sampled trace)
        if traced:
            # The consumer span: which task, and its real subject (validated against it).
            tracing.annotate(
                task_id=task.id,
                capability=task.capability,
                destination=subjects.task_submit(tenant, task.capability, lane),
            )
        rank = RANKS[lane]
        deferred = defer_for(task, time.time())
        if deferred is not None:
            return deferred
        if task.not_before is not None and task.not_before > time.time():
            await _sleep_until(task.not_before, task.deadline)
        tried = set(task.tried_agents)
        rejected: set[str] = set()
        told_waiting = False
        while True:
            now = time.time()
            if task.deadline is not None and now >= task.deadline:
                error = deadline_error(task)
                result = make_result(
                    task, ResultStatus.TIMED_OUT, now, error=error, attempts=task.attempt
                )
                return Final(result, dead_letter=True)
            if self.view.capability_full(task.capability, self.settings.capability_share):
                # Its own attempts hold their share of the slots: one of them must end first,
                # so that one capability of long tasks cannot take every slot from the rest.
                agent = None
            elif task.agent is None:
                agent = self.view.pick(
                    task.capability,
                    tried,
                    task.affinity,
                    allowed=self._breaker_allows,
                    penalty=self._failing_penalty,
                )
            else:  # pinned (a swarm job's ensemble member): that agent or none
                agent = self.view.pinned(task.agent, task.capability, self._breaker_allows)
            if agent is not None and agent.agent_id in rejected:
                agent = None
            if agent is None:
                orphan = not self.view.has_capability(task.capability, task.agent)
                if orphan:
                    now = time.time()
                    if now - queued_at >= self.settings.no_agent_wait:
                        return no_agent_result(task, self.settings.no_agent_wait, now)
                    if self.waiting >= self.wait_cap:
                        # Enough slots already wait for agents: keep the rest free for work that
                        # can run, and look at this task again later.
                        return Defer(max(0.2, self.settings.no_agent_wait / 5))
                budget = 0.5 if rejected else 1.0
                if task.deadline is not None:
                    budget = min(budget, task.deadline - time.time())
                rejected.clear()
                if task.progress and not told_waiting and orphan:
                    told_waiting = True
                    await self.progress(tenant, task, "waiting", task.attempt + 1)
                # Held for want of any agent with the capability: what the no-agent alert sees.
                orphans = (
                    metrics.child(
                        metrics.TASKS_WAITING_FOR_AGENT, metrics.capabilities(task.capability)
                    )
                    if orphan
                    else None
                )
                if orphans is not None:
                    orphans.inc()
                self.waiting += 1
                try:
                    await self.view.wait_for_change(budget, rank)
                finally:
                    self.waiting -= 1
                    if orphans is not None:
                        orphans.dec()
                continue
            breaker = self.breakers.get(agent.agent_id)
            try:
                permit = breaker.acquire_permission()
            except CircuitOpenError:
                rejected.add(agent.agent_id)
                continue
            attempt = task.attempt + 1
            if traced:
                tracing.annotate(attempt=attempt, agent_id=agent.agent_id)
            if task.progress:
                await self.progress(tenant, task, "running", attempt, agent.agent_id)
            dispatched = time.time()
            started = time.perf_counter()
            try:
                reply = await self._dispatch(agent.agent_id, tenant, task, raw, attempt, traced)
            except ServiceError as exc:
                elapsed = time.perf_counter() - started
                if exc.code is ErrorCode.BUSY:
                    # Full, not faulty: not an attempt, not a breaker failure; try another.
                    breaker.release_permission(permit)
                    rejected.add(agent.agent_id)
                    continue
                if isinstance(exc, NoResponders):
                    # Gone before its registry entry expired (killed): the request never reached
                    # it, so no attempt was made. Pick it no more for a while (it expires).
                    breaker.release_permission(permit)
                    rejected.add(agent.agent_id)
                    self.view.suspend(agent.agent_id)
                    continue
                if is_agent_fault(exc.code):
                    breaker.on_error(elapsed, exc, permit=permit)
                else:
                    breaker.on_success(elapsed, permit=permit)
                return after_failure(
                    task,
                    agent.agent_id,
                    attempt,
                    exc,
                    backoff_base=self.settings.retry_backoff,
                    backoff_cap=self.settings.retry_backoff_max,
                )
            except BaseException:
                breaker.release_permission(permit)
                raise
            breaker.on_success(time.perf_counter() - started, permit=permit)
            finished = time.time()
            metrics.child(metrics.TASK_QUEUE_TIME, lane).observe(
                max(0.0, dispatched - task.created_at)
            )
            return Final(
                make_result(
                    task,
                    ResultStatus.SUCCEEDED,
                    finished,
                    output=reply.output,
                    cached=reply.cached,
                    agent_id=agent.agent_id,
                    attempts=attempt,
                    timings=Timings.model_construct(
                        queued_ms=(dispatched - task.created_at) * 1000,
                        run_ms=reply.run_ms,
                        total_ms=(finished - task.created_at) * 1000,
                    ),
                )
            )

    async def _dispatch(
        self,
        agent_id: str,
        tenant: str,
        task: Task,
        raw: dict[str, Any],
        attempt: int,
        traced: bool,
    ) -> RunReply:
        """Request one attempt from one agent (`traced`: in a sampled trace); its departure ends
        the wait at once."""
        # The task travels as it arrived (decoded and validated once), not re-dumped from the model.
        body = codec.pack({"task": raw, "attempt": attempt, "tenant": tenant})
        current = asyncio.current_task()
        assert current is not None
        pending = self.dispatches.setdefault(agent_id, set())
        pending.add(current)
        running = subjects.result_key(tenant, task.id)
        self._running_on[running] = agent_id
        counted = task.capability if self.settings.capability_share < 1.0 else None
        self.view.acquire(agent_id, counted)
        started = time.perf_counter()
        timeout = attempt_timeout(task, time.time())
        try:
            if not self.settings.dispatch_batching or traced:
                # Sampled attempts travel alone, each with its own trace context in its headers;
                # unsampled ones batch, and the worker runs them untraced.
                return await self.bus.request(
                    subjects.agent_run(agent_id),
                    body,
                    RunReply,
                    timeout=timeout,
                    template=subjects.TEMPLATES["run"],
                    span_attributes=tracing.task_attributes(
                        task.id, task.capability, attempt, agent_id
                    )
                    if traced
                    else None,
                )
            try:
                return await within(self.batches.submit(agent_id, body), timeout)
            except TimeoutError:
                raise ServiceError(
                    ErrorCode.TIMEOUT,
                    f"Agent {agent_id} did not answer attempt {attempt} within {timeout:g} s.",
                    retryable=True,
                ) from None
        except asyncio.CancelledError:
            if current not in self._gone:
                raise
            self._gone.discard(current)
            current.uncancel()
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"Agent {agent_id} went away during attempt {attempt}.",
                retryable=True,
            ) from None
        finally:
            self._running_on.pop(running, None)
            pending.discard(current)
            if not pending and self.dispatches.get(agent_id) is pending:
                del self.dispatches[agent_id]
            self.view.release(agent_id, counted)
            elapsed = time.perf_counter() - started
            capability = metrics.capabilities(task.capability)
            metrics.child(metrics.DISPATCH_DURATION, capability).observe(elapsed)


async def _sleep_until(when: float, deadline: float | None) -> None:
    """Wait for a retry's backoff; the keepalive loop keeps the message ours meanwhile."""
    target = min(when, deadline) if deadline is not None else when
    delay = target - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
