"""Size limits count headers and keep every message under the server's max_payload."""

from __future__ import annotations

import pytest

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import (
    DISPATCH_ROOM,
    HEADER_ROOM,
    TASK_ENVELOPE_ROOM,
    Limits,
    cut,
    headers_size,
)

MIB = 1024 * 1024


def test_header_size_is_what_nats_py_writes() -> None:
    headers = {"Content-Type": "application/msgpack", "Nats-Msg-Id": "abc"}
    wire = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    assert headers_size(headers) == len(wire)
    assert headers_size(None) == 0


def test_limits_leave_room_for_headers_and_task_growth() -> None:
    limits = Limits.for_server(MIB)
    assert limits.body == MIB - HEADER_ROOM
    assert limits.task == limits.body - TASK_ENVELOPE_ROOM
    lowered = Limits.for_server(MIB, configured_body=256 * 1024)
    assert lowered.body == 256 * 1024
    raised = Limits.for_server(MIB, configured_body=8 * MIB)
    assert raised.body == MIB - HEADER_ROOM  # never above what the server takes


def test_a_body_that_fits_alone_but_not_with_headers_is_refused() -> None:
    limits = Limits.for_server(MIB)
    near = b"x" * (MIB - 100)
    with pytest.raises(ServiceError) as info:
        limits.check_fits("Request on hub.agent.{agent_id}.run", near, {"traceparent": "0" * 200})
    assert info.value.code is ErrorCode.TOO_LARGE
    assert "max_payload of 1048576" in info.value.message
    limits.check_fits("Reply", b"x" * 1000, {"a": "b"})


def test_task_limit_names_the_sizes() -> None:
    limits = Limits.for_server(MIB)
    limits.check_task(limits.task)
    with pytest.raises(ServiceError, match=f"above the task limit of {limits.task} bytes"):
        limits.check_task(limits.task + 1)
    # A retried task has grown by its retry state already: only the dispatch room is kept
    limits.check_task(limits.task + 1, retried=True)
    with pytest.raises(ServiceError, match="Retried task"):
        limits.check_task(limits.body - DISPATCH_ROOM + 1, retried=True)


def test_a_server_too_small_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="too small"):
        Limits.for_server(1024)


def test_long_text_is_cut_and_says_so() -> None:
    assert cut("short") == "short"
    long = cut("x" * 5000, 100)
    assert len(long) <= 100 and long.endswith(")")
