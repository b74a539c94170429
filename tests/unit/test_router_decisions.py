"""The router's decisions as pure functions: backoff, fault classes, outcomes of an attempt."""

from __future__ import annotations

import random

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import MAX_ERROR_MESSAGE
from swarmhub.schemas import ResultStatus, Task
from swarmhub.task_router.decisions import (
    MAX_TRIED_AGENTS,
    Final,
    Retry,
    after_failure,
    attempt_timeout,
    backoff,
    defer_for,
    final_status,
    is_agent_fault,
    no_agent_result,
)

NOW = 1_800_000_000.0


def _fail(task: Task, attempt: int, exc: ServiceError, agent: str = "a1") -> Final | Retry:
    return after_failure(task, agent, attempt, exc, backoff_base=0.1, backoff_cap=5.0, now=NOW)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt, nominal in ((1, 0.1), (2, 0.2), (3, 0.4), (10, 5.0)):
        delay = backoff(attempt, 0.1, 5.0, rng)
        assert 0.5 * nominal <= delay <= 1.5 * nominal


def test_only_agent_faults_count_against_breakers() -> None:
    assert is_agent_fault(ErrorCode.TIMEOUT) and is_agent_fault(ErrorCode.BUSY)
    assert not is_agent_fault(ErrorCode.HANDLER_ERROR)
    assert final_status(ErrorCode.TIMEOUT) is ResultStatus.TIMED_OUT
    assert final_status(ErrorCode.HANDLER_ERROR) is ResultStatus.FAILED


def test_a_retryable_failure_queues_the_next_attempt_with_its_state() -> None:
    task = Task(id="t1", capability="echo", created_at=NOW - 1)
    outcome = _fail(task, 1, ServiceError(ErrorCode.HANDLER_ERROR, "x" * 5000, retryable=True))
    assert isinstance(outcome, Retry)
    assert outcome.msg_id == "t1.a1"
    assert outcome.task.attempt == 1 and outcome.task.tried_agents == ["a1"]
    assert outcome.task.not_before is not None and outcome.task.not_before > NOW
    assert outcome.task.last_error is not None
    assert len(outcome.task.last_error.message) <= MAX_ERROR_MESSAGE


def test_tried_agents_stay_bounded() -> None:
    task = Task(capability="echo", tried_agents=[f"a{i}" for i in range(MAX_TRIED_AGENTS)])
    outcome = _fail(task, 1, ServiceError(ErrorCode.TIMEOUT, "slow", retryable=True), "new")
    assert isinstance(outcome, Retry)
    assert len(outcome.task.tried_agents) == MAX_TRIED_AGENTS
    assert outcome.task.tried_agents[-1] == "new"


def test_exhausted_attempts_end_the_task_and_are_dead_lettered() -> None:
    task = Task(capability="echo", max_attempts=2, attempt=1, created_at=NOW - 2)
    outcome = _fail(task, 2, ServiceError(ErrorCode.TIMEOUT, "slow", retryable=True))
    assert isinstance(outcome, Final) and outcome.dead_letter
    assert outcome.result.status is ResultStatus.TIMED_OUT
    assert outcome.result.error is not None
    assert outcome.result.error.message == "slow (after 2 attempts)"
    assert outcome.result.timings.total_ms == 2000


def test_a_non_retryable_failure_ends_at_once_without_a_dead_letter() -> None:
    outcome = _fail(Task(capability="fail"), 1, ServiceError(ErrorCode.HANDLER_ERROR, "no"))
    assert isinstance(outcome, Final) and not outcome.dead_letter
    assert outcome.result.status is ResultStatus.FAILED and outcome.result.attempts == 1


def test_the_deadline_bounds_the_attempt_timeout() -> None:
    assert attempt_timeout(Task(capability="echo", attempt_timeout=10), NOW) == 11
    soon = Task(capability="echo", attempt_timeout=10, deadline=NOW + 2)
    assert attempt_timeout(soon, NOW) == 2
    late = Task(capability="echo", deadline=NOW - 5)
    assert attempt_timeout(late, NOW) == 0.05


def test_far_off_tasks_are_deferred_instead_of_holding_a_slot() -> None:
    assert defer_for(Task(capability="echo"), NOW) is None
    assert defer_for(Task(capability="echo", not_before=NOW + 0.5), NOW) is None
    later = defer_for(Task(capability="echo", not_before=NOW + 600), NOW)
    assert later is not None and later.delay == 600
    # The deadline comes first: the task is looked at again when it is due to expire
    bounded = defer_for(Task(capability="echo", not_before=NOW + 600, deadline=NOW + 60), NOW)
    assert bounded is not None and bounded.delay == 60


def test_a_task_no_agent_took_is_dead_lettered_with_the_wait() -> None:
    outcome = no_agent_result(Task(capability="translate"), 30.0, NOW)
    assert outcome.dead_letter and outcome.result.status is ResultStatus.DEAD_LETTERED
    assert outcome.result.error is not None and "waited 30 s" in outcome.result.error.message


def test_a_rejected_submits_task_id_is_read_from_its_own_tenants_dedupe_id_only() -> None:
    from swarmhub.task_router.service import _header_task_id

    assert _header_task_id("ann", "ann.abc") == "abc"
    assert _header_task_id("ann", "ann.abc.0f1e2d3c4b5a6978") == "abc"  # tagged by SwarmClient
    assert _header_task_id("ann", "ann.abc.a2") == "abc"  # the router's own retry
    assert _header_task_id("ann", "ann.abc.a2.0f1e2d3c4b5a6978") == "abc"  # tagged
    assert _header_task_id("ann", "abc") == "abc"  # bare
    assert _header_task_id("ann", "bob.abc.0f1e2d3c4b5a6978") is None  # another tenant's name
    assert _header_task_id("ann", None) is None
