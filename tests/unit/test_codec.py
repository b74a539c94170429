"""The msgpack codec: round trips, and errors that name the problem."""

from __future__ import annotations

import msgpack
import pytest

from swarmhub import codec
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import Priority, ResultStatus, Task, TaskResult


def test_task_round_trip_keeps_every_field() -> None:
    task = Task(capability="echo", payload={"text": "hi", "n": [1, 2]}, priority=Priority.HIGH)
    again = codec.decode(codec.encode(task), Task)
    assert again == task


def test_result_round_trip_with_binary_output() -> None:
    result = TaskResult(task_id="t1", status=ResultStatus.SUCCEEDED, output=b"\x00\xff")
    assert codec.decode(codec.encode(result), TaskResult).output == b"\x00\xff"


def test_malformed_bytes_are_a_malformed_error() -> None:
    with pytest.raises(ServiceError) as info:
        codec.decode(b"\xc1\xc1 not msgpack", Task)
    assert info.value.code is ErrorCode.MALFORMED
    assert "not valid msgpack" in info.value.message


def test_non_map_body_is_rejected_with_its_type() -> None:
    with pytest.raises(ServiceError) as info:
        codec.decode(msgpack.packb([1, 2, 3]), Task)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert "got list" in info.value.message


def test_schema_violation_names_the_field() -> None:
    body = msgpack.packb({"capability": "echo", "max_attempts": 0})
    with pytest.raises(ServiceError) as info:
        codec.decode(body, Task)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert "field 'max_attempts'" in info.value.message


def test_unknown_field_is_rejected_by_name() -> None:
    body = msgpack.packb({"capability": "echo", "capabilty": "typo"})
    with pytest.raises(ServiceError) as info:
        codec.decode(body, Task)
    assert "field 'capabilty'" in info.value.message


def test_oversize_body_is_too_large_on_both_sides() -> None:
    task = Task(capability="echo", payload={"blob": "x" * 5000})
    with pytest.raises(ServiceError) as info:
        codec.encode(task, max_bytes=1024)
    assert info.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(ServiceError) as info:
        codec.decode(b"\x80" * 2048, Task, max_bytes=1024)
    assert info.value.code is ErrorCode.TOO_LARGE
    assert "2048 bytes" in info.value.message
