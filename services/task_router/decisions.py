"""The router's decisions as pure functions: which faults count, backoff, final status, results."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import cut
from swarmhub.schemas import ErrorInfo, ResultStatus, Task, TaskResult, Timings

AGENT_FAULTS = frozenset(
    {ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL, ErrorCode.BUSY}
)
"""Errors that say the agent, not the task, is unwell: these count against its breaker."""
TASK_FAULTS = frozenset(
    {
        ErrorCode.HANDLER_ERROR,
        ErrorCode.INVALID_TASK,
        ErrorCode.BAD_REQUEST,
        ErrorCode.MALFORMED,
        ErrorCode.TOO_LARGE,
        ErrorCode.UNKNOWN_CAPABILITY,
    }
)
"""Errors of the task itself (its input, its capability's own code), not of the hub."""
DEAD_LETTER_REASONS = (
    ErrorCode.INVALID_TASK,
    ErrorCode.NO_AGENT,
    ErrorCode.DEADLINE_EXCEEDED,
    ErrorCode.ATTEMPTS_EXHAUSTED,
    ErrorCode.TIMEOUT,
    ErrorCode.UNAVAILABLE,
    ErrorCode.INTERNAL,
)
"""The reasons the router dead-letters a task for (a retryable error whose attempts ran out)."""
MAX_TRIED_AGENTS = 16
"""How many agents a retried task remembers having tried."""


@dataclass(frozen=True)
class Final:
    """An attempt ended the task: record this result (after a dead letter, when asked)."""

    result: TaskResult
    dead_letter: bool = False


@dataclass(frozen=True)
class Retry:
    """An attempt failed but may be tried again: publish this task as the next attempt."""

    task: Task
    msg_id: str


@dataclass(frozen=True)
class Defer:
    """Not now: hand the message back to be delivered again after `delay` seconds."""

    delay: float


Outcome = Final | Retry | Defer
HOLD_AT_MOST = 1.0
"""Seconds a router waits in a slot for a task's `not_before`; longer waits are deferred."""


def defer_for(task: Task, now: float) -> Defer | None:
    """A Defer when the task is due later than a router should hold a slot for it."""
    if task.not_before is None:
        return None
    due = task.not_before if task.deadline is None else min(task.not_before, task.deadline)
    return Defer(due - now) if due - now > HOLD_AT_MOST else None


def no_agent_result(task: Task, waited: float, now: float) -> Final:
    """The final result of a task no live agent could take within `waited` seconds."""
    error = ErrorInfo(
        code=ErrorCode.NO_AGENT,
        message=f"No live agent offers capability {task.capability!r} (waited {waited:g} s).",
    )
    return Final(
        make_result(task, ResultStatus.DEAD_LETTERED, now, error=error, attempts=task.attempt),
        dead_letter=True,
    )


def is_agent_fault(code: ErrorCode) -> bool:
    """Whether an error counts against the agent's circuit breaker."""
    return code in AGENT_FAULTS


def fault_of(result: TaskResult) -> str:
    """Whose fault a final result is: `none` (succeeded), `task` or `hub`."""
    if result.status is ResultStatus.SUCCEEDED:
        return "none"
    if result.error is not None and result.error.code in TASK_FAULTS:
        return "task"
    return "hub"


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before attempt `attempt + 1`: exponential from `base`, capped, jittered ±50 %."""
    jitter = (rng or random).uniform(0.5, 1.5)
    return float(min(cap, base * 2 ** (attempt - 1)) * jitter)


def final_status(code: ErrorCode) -> ResultStatus:
    """The result status of a task that failed for good with `code`."""
    return ResultStatus.TIMED_OUT if code is ErrorCode.TIMEOUT else ResultStatus.FAILED


def attempt_timeout(task: Task, now: float) -> float:
    """How long the router waits for one attempt's answer (its deadline bounds it)."""
    timeout = task.attempt_timeout + 1.0
    if task.deadline is not None:
        timeout = max(0.05, min(timeout, task.deadline - now))
    return timeout


def make_result(task: Task, status: ResultStatus, now: float, **fields: Any) -> TaskResult:
    """The final result of `task`, timed from its creation to `now`.

    Built without validation: every field comes from a validated Task or RunReply or from the
    router itself, and this runs once per task.
    """
    timings: Timings = fields.pop("timings", None) or Timings.model_construct(
        total_ms=(now - task.created_at) * 1000
    )
    return TaskResult.model_construct(
        task_id=task.id,
        capability=task.capability,
        status=status,
        finished_at=now,
        timings=timings,
        **fields,
    )


def deadline_error(task: Task) -> ErrorInfo:
    """The error of a task that missed its deadline, naming its last failure if any."""
    last = task.last_error
    tail = f" after {task.attempt} attempts; last error: {last.message}" if last else ""
    return ErrorInfo(code=ErrorCode.DEADLINE_EXCEEDED, message=f"Task missed its deadline{tail}.")


def after_failure(
    task: Task,
    agent_id: str,
    attempt: int,
    exc: ServiceError,
    *,
    backoff_base: float,
    backoff_cap: float,
    now: float | None = None,
) -> Outcome:
    """A hopeless failure ends the task; any other queues the next attempt with backoff."""
    now = time.time() if now is None else now
    error = ErrorInfo(code=exc.code, message=cut(exc.message), retryable=exc.retryable)
    if not exc.retryable or attempt >= task.max_attempts:
        if attempt > 1:
            error = error.model_copy(
                update={"message": f"{error.message} (after {attempt} attempts)"}
            )
        status = final_status(exc.code)
        result = make_result(task, status, now, error=error, attempts=attempt, agent_id=agent_id)
        # Attempts exhausted on a retryable error: keep the task for inspection and replay.
        return Final(result, dead_letter=exc.retryable)
    retry = task.model_copy(
        update={
            "attempt": attempt,
            "last_error": error,
            "not_before": now + backoff(attempt, backoff_base, backoff_cap),
            "tried_agents": [*task.tried_agents, agent_id][-MAX_TRIED_AGENTS:],
        }
    )
    return Retry(retry, msg_id=f"{task.id}.a{attempt}")
