"""Message size limits that count headers, derived from the server's `max_payload`.

nats-server counts headers and body together against `max_payload` and closes the connection of
a client that sends more; nats-py checks only the body. So every limit here keeps room for the
headers we send, and `check_fits` measures the real total before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from swarmhub.errors import ErrorCode, ServiceError

if TYPE_CHECKING:
    from swarmhub.schemas import Task

HEADER_ROOM = 4096
"""Bytes kept free on every message for headers (content type, ids, trace context, errors)."""
TASK_ENVELOPE_ROOM = 8192
"""Bytes a task may grow by in flight: dispatch wrapper plus retry state (error, agents)."""
DISPATCH_ROOM = 256
"""Bytes the dispatch wrapper adds to a task body (a retried task may use the rest of its room)."""
MAX_ERROR_MESSAGE = 1024
"""Error sentences are cut to this many characters before they travel or are stored."""
NOT_BEFORE_HORIZON = 3600.0
"""Default of how far ahead (seconds) a task may ask to start (SWARMHUB_NOT_BEFORE_HORIZON)."""
MIN_MAX_PAYLOAD = 64 * 1024
"""The smallest server `max_payload` SwarmHub runs with (room for envelopes and headers)."""
_HEADER_LINE = len("NATS/1.0\r\n") + len("\r\n")


def headers_size(headers: Mapping[str, str] | None) -> int:
    """Bytes `headers` take on the wire (the NATS/1.0 block nats-py writes, UTF-8 encoded).

    At least the real size: nats-py trims keys and values, which only makes them shorter.
    """
    if not headers:
        return 0
    return _HEADER_LINE + sum(
        len(k.encode(errors="replace")) + len(v.encode(errors="replace")) + 4
        for k, v in headers.items()
    )


def cut(text: str, limit: int = MAX_ERROR_MESSAGE) -> str:
    """`text` cut to `limit` characters, marked as cut, so no value makes a huge log or error."""
    return text if len(text) <= limit else text[: limit - 16] + f"… (+{len(text) - limit + 16})"


@dataclass(frozen=True)
class Limits:
    """The sizes one connection may send: the server's total, a message body, a task body."""

    max_payload: int
    body: int
    task: int

    @classmethod
    def for_server(cls, max_payload: int, configured_body: int | None = None) -> Limits:
        """Limits under a server's `max_payload`, optionally lowered by a configured body limit."""
        if max_payload < MIN_MAX_PAYLOAD:
            raise ValueError(
                f"The NATS server's max_payload of {max_payload} bytes is too small; "
                f"SwarmHub needs at least {MIN_MAX_PAYLOAD} bytes."
            )
        body = max_payload - HEADER_ROOM
        if configured_body is not None:
            body = max(TASK_ENVELOPE_ROOM * 2, min(body, configured_body))
        return cls(max_payload=max_payload, body=body, task=body - TASK_ENVELOPE_ROOM)

    def check_fits(self, what: str, data: bytes, headers: Mapping[str, str] | None) -> None:
        """Raise TOO_LARGE when body plus headers would exceed the server's `max_payload`."""
        total = len(data) + headers_size(headers)
        if total > self.max_payload:
            raise ServiceError(
                ErrorCode.TOO_LARGE,
                f"{what} is {total} bytes with its headers, above the NATS server's "
                f"max_payload of {self.max_payload} bytes.",
            )

    def check_task(self, size: int, *, retried: bool = False) -> None:
        """Raise TOO_LARGE when a task body leaves no room for its dispatch and retry state.

        A retried task has already grown by its retry state; it needs only the dispatch room.
        """
        if retried and size > self.body - DISPATCH_ROOM:
            raise ServiceError(
                ErrorCode.TOO_LARGE,
                f"Retried task is {size} bytes, above the limit of {self.body - DISPATCH_ROOM} "
                f"bytes (the message limit less {DISPATCH_ROOM} bytes for dispatch).",
            )
        if not retried and size > self.task:
            raise ServiceError(
                ErrorCode.TOO_LARGE,
                f"Task is {size} bytes, above the task limit of {self.task} bytes "
                f"(the message limit of {self.body} bytes less {TASK_ENVELOPE_ROOM} bytes "
                "for dispatch and retry state).",
            )


def check_schedule(task: Task, now: float, horizon: float = NOT_BEFORE_HORIZON) -> None:
    """Raise INVALID_TASK when a task asks to start further ahead than `horizon` seconds."""
    if task.not_before is not None and task.not_before - now > horizon:
        raise ServiceError(
            ErrorCode.INVALID_TASK,
            f"Task not_before is {task.not_before - now:.0f} s ahead; at most {horizon:g} s "
            "is allowed (SWARMHUB_NOT_BEFORE_HORIZON).",
        )
