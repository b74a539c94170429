"""Error codes shared by every service, and the exception that carries one over the wire."""

from __future__ import annotations

from enum import StrEnum


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
}


class ServiceError(Exception):
    """An expected error answered to the caller with a code and a clean message (no stack trace)."""

    def __init__(self, code: ErrorCode | str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.INTERNAL
        self.message = message
        self.retryable = retryable

    @property
    def status(self) -> int:
        """The HTTP-like number sent in the Nats-Service-Error-Code header."""
        return HTTP_STATUS[self.code]

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


class NonRetryableError(Exception):
    """Raised by a capability handler when retrying the task elsewhere cannot help."""
