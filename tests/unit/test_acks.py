"""Reading JetStream's publish acknowledgements (the shared-subscription publisher's parser)."""

from __future__ import annotations

import pytest

from swarmhub.acks import WRONG_LAST_SEQUENCE, Stored, StreamRejected, read_ack


def test_an_acknowledgement_names_the_stream_and_sequence() -> None:
    assert read_ack(b'{"stream":"hub_tasks","seq":42}') == Stored("hub_tasks", 42, False)


def test_a_duplicate_is_marked() -> None:
    ack = read_ack(b'{"stream":"hub_tasks","seq":42,"duplicate":true}')
    assert ack.duplicate and ack.seq == 42


def test_an_error_answer_raises_with_its_codes() -> None:
    body = (
        b'{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 7"},'
        b'"type":"io.nats.jetstream.api.v1.pub_ack_response"}'
    )
    with pytest.raises(StreamRejected) as caught:
        read_ack(body)
    assert caught.value.err_code in WRONG_LAST_SEQUENCE
    assert caught.value.code == 400
    assert "wrong last sequence" in caught.value.description


def test_a_body_that_is_not_json_is_an_error() -> None:
    with pytest.raises(ValueError):
        read_ack(b"\x00not json")
