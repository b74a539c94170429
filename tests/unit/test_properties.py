"""Property tests of the decoder: every wire message, fed anything, fails only as a short
ServiceError; every valid message survives encode and decode unchanged."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmhub import codec, schemas
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import MAX_ERROR_MESSAGE
from tests.wire_strategies import (
    FAST,
    MODELS,
    any_msgpack,
    hostile_bytes,
    long_texts,
    near_valid,
    valid_documents,
    valid_messages,
)

DECODE_CODES = {ErrorCode.MALFORMED, ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE}
MODEL = st.sampled_from(MODELS)


def decode_or_refuse(data: bytes, model: type[schemas.Message], doc: Any = None) -> Any:
    """Decode; a refusal must be a decode ServiceError with a short message that echoes no body.

    What decodes must encode again (services answer with what they decoded) or be refused
    as a ServiceError.
    """
    try:
        message = codec.decode(data, model)
    except ServiceError as exc:
        assert exc.code in DECODE_CODES, exc
        assert 0 < len(exc.message) <= MAX_ERROR_MESSAGE
        assert len(str(exc)) <= MAX_ERROR_MESSAGE + 32
        for text in long_texts(doc):
            assert text not in exc.message, "the error message carries the body back"
        if len(data) > MAX_ERROR_MESSAGE:
            assert repr(data)[2:-1] not in exc.message
        return exc
    assert type(message) is model
    try:
        codec.encode(message)
    except ServiceError as exc:
        assert exc.code is ErrorCode.TOO_LARGE
    return message


@FAST
@given(MODEL, hostile_bytes())
def test_arbitrary_bytes_fail_only_as_a_short_service_error(
    model: type[schemas.Message], data: bytes
) -> None:
    decode_or_refuse(data, model)


@FAST
@given(MODEL, any_msgpack())
def test_arbitrary_msgpack_values_fail_only_as_a_short_service_error(
    model: type[schemas.Message], value: Any
) -> None:
    decode_or_refuse(codec.pack(value), model, value)


@FAST
@given(st.data())
def test_near_valid_documents_fail_only_as_a_short_service_error(data: st.DataObject) -> None:
    model = data.draw(MODEL, label="model")
    doc = data.draw(near_valid(model), label="document")
    decode_or_refuse(codec.pack(doc), model, doc)


@FAST
@given(st.data())
def test_every_valid_message_survives_encode_and_decode(data: st.DataObject) -> None:
    model = data.draw(MODEL, label="model")
    message = data.draw(valid_messages(model), label="message")
    again = codec.decode(codec.encode(message), model)
    assert again == message
    assert codec.encode(again) == codec.encode(message)


@FAST
@given(st.data())
def test_what_the_model_accepts_the_decoder_accepts_as_sent(data: st.DataObject) -> None:
    model = data.draw(MODEL, label="model")
    doc = data.draw(valid_documents(model), label="document")
    # Fields left out take defaults, some of them the time or a new id: hold both still.
    same_id = uuid.UUID(int=7)
    with (
        mock.patch("time.time", return_value=1_700_000_000.0),
        mock.patch("uuid.uuid4", return_value=same_id),
    ):
        assert codec.decode(codec.pack(doc), model) == model.model_validate(doc)


@FAST
@given(MODEL, st.binary(min_size=1, max_size=2048), st.integers(0, 1024))
def test_a_body_over_the_limit_is_too_large_before_it_is_parsed(
    model: type[schemas.Message], data: bytes, limit: int
) -> None:
    try:
        codec.decode(data, model, max_bytes=limit)
    except ServiceError as exc:
        if len(data) > limit:
            assert exc.code is ErrorCode.TOO_LARGE
            assert f"{len(data)} bytes" in exc.message
        else:
            assert exc.code in DECODE_CODES
    else:
        assert len(data) <= limit


@FAST
@given(st.data())
def test_encode_refuses_above_its_limit_and_only_there(data: st.DataObject) -> None:
    model = data.draw(MODEL, label="model")
    message = data.draw(valid_messages(model), label="message")
    size = len(codec.encode(message))
    limit = data.draw(st.integers(max(0, size - 64), size + 64), label="limit")
    if size <= limit:
        assert codec.encode(message, max_bytes=limit) == codec.encode(message)
    else:
        with pytest.raises(ServiceError) as info:
            codec.encode(message, max_bytes=limit)
        assert info.value.code is ErrorCode.TOO_LARGE


# -- the findings, pinned as plain examples --------------------------------------------------


@pytest.mark.parametrize("key", [b"\x91\x01", b"\x80"])
def test_a_map_keyed_by_an_array_or_a_map_is_malformed(key: bytes) -> None:
    with pytest.raises(ServiceError) as info:
        codec.decode(b"\x81" + key + b"\x01", schemas.Task)
    assert info.value.code is ErrorCode.MALFORMED


def test_an_unknown_field_with_a_huge_name_is_named_but_not_echoed() -> None:
    name = "x" * 100_000
    with pytest.raises(ServiceError) as info:
        codec.decode(codec.pack({"capability": "c", name: 1}), schemas.Task)
    assert "field 'xxxx" in info.value.message
    assert len(info.value.message) <= MAX_ERROR_MESSAGE


def test_hundreds_of_bad_items_make_one_short_message() -> None:
    item = {"task": {"capability": "c", "priority": "nope"}, "attempt": 0}
    with pytest.raises(ServiceError) as info:
        codec.decode(codec.pack({"items": [item] * 256}), schemas.RunBatch)
    assert info.value.message.startswith("Invalid RunBatch: field 'items.0.task.priority'")
    assert "more" in info.value.message and len(info.value.message) <= MAX_ERROR_MESSAGE


def test_a_decoded_output_too_deep_to_wrap_is_refused_as_too_large() -> None:
    # An output nested as deep as msgpack decodes is accepted; wrapped in a reply, it is deeper
    # than msgpack encodes: encode says so as a ServiceError, which callers already handle.
    body = codec.pack({"task_id": "t", "status": "succeeded"})
    body = b"\x83" + body[1:] + codec.pack("output") + b"\x91" * 1023 + b"\x01"
    result = codec.decode(body, schemas.TaskResult)
    with pytest.raises(ServiceError) as info:
        codec.encode(schemas.StatusReply(task_id="t", state="done", result=result))
    assert info.value.code is ErrorCode.TOO_LARGE
