"""Error codes shared by every service, and the exceptions that carry them.

`ServiceError(code, message)` builds the family class of its code, so callers can catch
`Rejected`, `Unavailable`, `TimedOut`, `TaskFailed` or `NoAgent`, or everything as `SwarmHubError`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarmhub.schemas import TaskResult


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes; each maps to an HTTP-like number for ADR-32 headers."""

    BAD_REQUEST = "bad_request"
    MALFORMED = "malformed"
    INVALID_TASK = "invalid_task"
    UNKNOWN_CAPABILITY = "unknown_capability"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    NO_AGENT = "no_agent"
    BUSY = "busy"
    HANDLER_ERROR = "handler_error"
    TIMEOUT = "timeout"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    CIRCUIT_OPEN = "circuit_open"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    CANCELLED = "cancelled"
    NO_QUORUM = "no_quorum"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.MALFORMED: 400,
    ErrorCode.INVALID_TASK: 400,
    ErrorCode.UNKNOWN_CAPABILITY: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.NO_AGENT: 503,
    ErrorCode.BUSY: 503,
    ErrorCode.HANDLER_ERROR: 500,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.ATTEMPTS_EXHAUSTED: 500,
    ErrorCode.CIRCUIT_OPEN: 503,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
    ErrorCode.CANCELLED: 409,
    ErrorCode.NO_QUORUM: 409,
}


def _known(code: ErrorCode | str) -> ErrorCode:
    return ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL


class SwarmHubError(Exception):
    """Base of every error SwarmHub raises to its callers."""


class ServiceError(SwarmHubError):
    """An expected error answered to the caller with a code and a clean message (no stack trace)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> ServiceError:
        if cls is ServiceError:  # subclasses (with their own signatures) are built as they are
            code = args[0] if args else kwargs.get("code", ErrorCode.INTERNAL)
            cls = _FAMILY.get(_known(code), ServiceError)
        return super().__new__(cls)

    def __init__(self, code: ErrorCode | str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = _known(code)
        self.message = message
        self.retryable = retryable

    @property
    def status(self) -> int:
        """The HTTP-like number sent in the Nats-Service-Error-Code header."""
        return HTTP_STATUS[self.code]

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class Rejected(ServiceError):
    """The hub refused the request as it was given: fix it rather than retry it."""


class Unavailable(ServiceError):
    """Nothing could take the request just now (no server, a full agent, an open circuit)."""


class NoResponders(Unavailable):
    """Nobody listens on the subject a request went to (its agent or service is gone)."""


class TimedOut(ServiceError):
    """No answer came in time."""


class TaskTimeout(TimedOut):
    """A wait gave up before the task had a result; the task itself may still finish."""


class TaskFailed(ServiceError):
    """A task ended without success; `result` holds its final result when there is one."""

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        *,
        retryable: bool = False,
        result: TaskResult | None = None,
    ) -> None:
        super().__init__(code, message, retryable=retryable)
        self.result = result


class NoAgent(TaskFailed):
    """No live agent offered the task's capability in time."""


_FAMILY: dict[ErrorCode, type[ServiceError]] = {
    ErrorCode.BAD_REQUEST: Rejected,
    ErrorCode.MALFORMED: Rejected,
    ErrorCode.INVALID_TASK: Rejected,
    ErrorCode.UNKNOWN_CAPABILITY: Rejected,
    ErrorCode.NOT_FOUND: Rejected,
    ErrorCode.TOO_LARGE: Rejected,
    ErrorCode.UNAVAILABLE: Unavailable,
    ErrorCode.BUSY: Unavailable,
    ErrorCode.CIRCUIT_OPEN: Unavailable,
    ErrorCode.TIMEOUT: TimedOut,
    ErrorCode.DEADLINE_EXCEEDED: TimedOut,
    ErrorCode.NO_AGENT: NoAgent,
    ErrorCode.HANDLER_ERROR: TaskFailed,
    ErrorCode.ATTEMPTS_EXHAUSTED: TaskFailed,
    ErrorCode.CANCELLED: TaskFailed,
    ErrorCode.NO_QUORUM: TaskFailed,
}


class NonRetryableError(Exception):
    """Raised by a capability handler when retrying the task elsewhere cannot help."""
