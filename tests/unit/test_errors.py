"""Error families: a ServiceError is built as the class of its code; results raise TaskFailed."""

from __future__ import annotations

import pytest

from swarmhub import (
    ErrorCode,
    NoAgent,
    Rejected,
    ServiceError,
    SwarmHubError,
    TaskFailed,
    TimedOut,
    Unavailable,
)
from swarmhub.client import as_task, check_result
from swarmhub.schemas import ErrorInfo, ResultStatus, Task, TaskResult


@pytest.mark.parametrize(
    ("code", "family"),
    [
        (ErrorCode.TOO_LARGE, Rejected),
        (ErrorCode.INVALID_TASK, Rejected),
        (ErrorCode.BUSY, Unavailable),
        (ErrorCode.UNAVAILABLE, Unavailable),
        (ErrorCode.TIMEOUT, TimedOut),
        (ErrorCode.NO_AGENT, NoAgent),
        (ErrorCode.HANDLER_ERROR, TaskFailed),
        (ErrorCode.INTERNAL, ServiceError),
    ],
)
def test_a_service_error_is_built_as_its_family(code: ErrorCode, family: type) -> None:
    exc = ServiceError(code, "why", retryable=True)
    assert type(exc) is family
    assert isinstance(exc, SwarmHubError) and exc.code is code and exc.retryable
    assert str(exc) == f"{code.value}: why"


def result(status: ResultStatus, code: ErrorCode | None = None) -> TaskResult:
    error = ErrorInfo(code=code, message="it broke") if code else None
    return TaskResult(task_id="t1", status=status, error=error, attempts=2)


def test_a_succeeded_result_passes() -> None:
    ok = result(ResultStatus.SUCCEEDED)
    assert check_result(ok) is ok


def test_a_failed_result_raises_task_failed_carrying_it() -> None:
    failed = result(ResultStatus.FAILED, ErrorCode.HANDLER_ERROR)
    with pytest.raises(TaskFailed, match=r"Task t1 failed after 2 attempt.*it broke") as info:
        check_result(failed)
    assert info.value.result is failed and info.value.code is ErrorCode.HANDLER_ERROR


def test_no_agent_raises_no_agent() -> None:
    with pytest.raises(NoAgent):
        check_result(result(ResultStatus.DEAD_LETTERED, ErrorCode.NO_AGENT))


def test_a_task_is_given_whole_or_as_capability_and_payload() -> None:
    task = Task(capability="echo")
    assert as_task(task, None, {}) is task
    made = as_task("echo", {"x": 1}, {"priority": "high"})
    assert made.capability == "echo" and made.payload == {"x": 1} and made.priority == "high"
    with pytest.raises(TypeError, match="either a Task"):
        as_task(task, {"x": 1}, {})
