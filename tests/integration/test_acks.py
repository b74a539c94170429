"""JetStream publishes acknowledged on one shared subscription, against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.errors import KeyNotFoundError

from swarmhub.bus import Bus
from swarmhub.config import BusSettings
from swarmhub.errors import ErrorCode, ServiceError, Unavailable
from swarmhub.store import create_once


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_url)
    bus = Bus(nc, BusSettings(nats_url=nats_url, request_timeout=2.0))
    yield bus
    await bus.close()


async def test_many_publishes_in_flight_each_get_their_own_acknowledgement(bus: Bus) -> None:
    await bus.js.add_stream(StreamConfig(name="ACKS_T", subjects=["acks.t.>"]))
    acks = await asyncio.gather(
        *(bus.js_publish(f"acks.t.{i}", b"x", msg_id=f"m-{i}") for i in range(200))
    )
    assert sorted(a.seq for a in acks) == list(range(1, 201))
    assert {a.stream for a in acks} == {"ACKS_T"}
    again = await bus.js_publish("acks.t.7", b"x", msg_id="m-7")
    assert again.duplicate


async def test_create_once_lets_only_the_first_writer_win(bus: Bus) -> None:
    kv = await bus.js.create_key_value(KeyValueConfig(bucket="acks_kv"))
    results = await asyncio.gather(
        *(create_once(bus, "acks_kv", "k1", f"v{i}".encode()) for i in range(10))
    )
    assert results.count(True) == 1
    entry = await kv.get("k1")
    assert entry.value == f"v{results.index(True)}".encode()


async def test_a_subject_no_stream_stores_is_unavailable_at_once(bus: Bus) -> None:
    with pytest.raises(Unavailable) as caught:
        await bus.js_publish("acks.nowhere", b"x", msg_id=None)
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert "is the stream provisioned" in caught.value.message


async def test_an_oversize_value_is_refused_before_it_is_sent(bus: Bus) -> None:
    await bus.js.create_key_value(KeyValueConfig(bucket="acks_big"))
    with pytest.raises(ServiceError) as caught:
        await create_once(bus, "acks_big", "k", b"x" * (bus.limits.max_payload + 1), retry_for=5.0)
    assert caught.value.code is ErrorCode.TOO_LARGE
    assert bus.nc.is_connected


async def test_a_purged_key_is_gone_and_can_be_created_again(bus: Bus) -> None:
    kv = await bus.js.create_key_value(KeyValueConfig(bucket="acks_purge", history=5))
    assert await bus.kv_create("acks_purge", "job.1", b"first")
    await kv.put("job.1", b"second")
    await bus.kv_purge("acks_purge", "job.1")
    with pytest.raises(KeyNotFoundError):
        await kv.get("job.1")
    assert len(await kv.history("job.1")) == 1  # the marker only
    # A purged key counts as none: it may be created again, once
    assert await bus.kv_create("acks_purge", "job.1", b"again")
    assert not await bus.kv_create("acks_purge", "job.1", b"once more")
    assert (await kv.get("job.1")).value == b"again"
