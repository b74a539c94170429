"""The service runtime against a real nats-server: typed endpoints, errors, micro, drain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import msgpack
import nats
import pytest

from swarmhub import codec
from swarmhub.bus import HDR_ERROR, HDR_ERROR_CODE, Bus
from swarmhub.config import BusSettings, RuntimeSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.runtime import Service
from swarmhub.schemas import Ack, CacheKey, ErrorInfo, Message
from tests.conftest import wait_until


class Slow(Message):
    """How long the handler should take."""

    ms: int


class Probe(Service):
    """A tiny service under test."""

    name: ClassVar[str] = "probe"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.running = 0
        self.peak = 0
        self.finished = 0
        self.add_endpoint("echo", "test.echo", CacheKey, self.echo)
        self.add_endpoint("slow", "test.slow", Slow, self.slow, concurrency=2)
        self.add_endpoint("boom", "test.boom", CacheKey, self.boom)

    async def echo(self, req: CacheKey) -> CacheKey:
        if req.key == "missing":
            raise ServiceError(ErrorCode.NOT_FOUND, "No such key.")
        return req

    async def slow(self, req: Slow) -> Ack:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(req.ms / 1000)
        self.running -= 1
        self.finished += 1
        return Ack()

    async def boom(self, req: CacheKey) -> Ack:
        raise RuntimeError("secret internal detail")


@pytest.fixture
async def probe(nats_url: str) -> AsyncIterator[Probe]:
    service = Probe(
        bus_settings=BusSettings(nats_url=nats_url),
        runtime_settings=RuntimeSettings(drain_timeout=5),
    )
    await service.start()
    yield service
    if not service.stopped.is_set():
        await service.shutdown()


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    settings = BusSettings(nats_url=nats_url)
    nc = await nats.connect(nats_url)
    yield Bus(nc, settings)
    await nc.close()


async def test_typed_request_reply(probe: Probe, bus: Bus) -> None:
    reply = await bus.request("test.echo", CacheKey(namespace="n", key="k"), CacheKey)
    assert reply == CacheKey(namespace="n", key="k")


async def test_expected_error_carries_adr32_headers_and_body(probe: Probe, bus: Bus) -> None:
    msg = await bus.nc.request("test.echo", codec.encode(CacheKey(key="missing")), timeout=2)
    assert msg.headers is not None
    assert msg.headers[HDR_ERROR_CODE] == "404"
    assert msg.headers[HDR_ERROR] == "No such key."
    assert codec.decode(msg.data, ErrorInfo).code is ErrorCode.NOT_FOUND
    with pytest.raises(ServiceError) as info:
        await bus.request("test.echo", CacheKey(key="missing"), CacheKey)
    assert info.value.code is ErrorCode.NOT_FOUND


async def test_malformed_msgpack_is_answered_not_fatal(probe: Probe, bus: Bus) -> None:
    msg = await bus.nc.request("test.echo", b"\xc1\xc1\xc1", timeout=2)
    assert msg.headers is not None and msg.headers[HDR_ERROR_CODE] == "400"
    assert "not valid msgpack" in codec.decode(msg.data, ErrorInfo).message
    # The service is still alive and serving.
    assert (await bus.request("test.echo", CacheKey(key="k"), CacheKey)).key == "k"


async def test_schema_violation_names_the_field(probe: Probe, bus: Bus) -> None:
    body = msgpack.packb({"namespace": "bad namespace!", "key": "k"})
    msg = await bus.nc.request("test.echo", body, timeout=2)
    info = codec.decode(msg.data, ErrorInfo)
    assert info.code is ErrorCode.BAD_REQUEST
    assert "field 'namespace'" in info.message


async def test_unexpected_exception_does_not_leak_details(probe: Probe, bus: Bus) -> None:
    msg = await bus.nc.request("test.boom", codec.encode(CacheKey(key="k")), timeout=2)
    info = codec.decode(msg.data, ErrorInfo)
    assert info.code is ErrorCode.INTERNAL
    assert "secret" not in info.message
    assert msg.headers is not None and msg.headers[HDR_ERROR_CODE] == "500"


async def test_concurrency_is_bounded_per_endpoint(probe: Probe, bus: Bus) -> None:
    calls = [bus.request("test.slow", Slow(ms=100), Ack) for _ in range(8)]
    await asyncio.gather(*calls)
    assert probe.peak == 2
    assert probe.finished == 8


async def test_micro_discovery_answers(probe: Probe, bus: Bus) -> None:
    for subject in (
        "$SRV.PING",
        "$SRV.PING.probe",
        f"$SRV.INFO.probe.{probe.identity.instance_id}",
    ):
        msg = await bus.nc.request(subject, b"", timeout=2)
        body = json.loads(msg.data)
        assert body["name"] == "probe"
        assert body["id"] == probe.identity.instance_id
    await bus.request("test.echo", CacheKey(key="k"), CacheKey)
    stats = json.loads((await bus.nc.request("$SRV.STATS.probe", b"", timeout=2)).data)
    echo = next(e for e in stats["endpoints"] if e["name"] == "echo")
    assert echo["num_requests"] >= 1
    assert echo["queue_group"] == "q"


async def test_shutdown_finishes_in_flight_work(probe: Probe, bus: Bus) -> None:
    pending = [asyncio.create_task(bus.request("test.slow", Slow(ms=300), Ack)) for _ in range(2)]
    await wait_until(lambda: _true(probe.running == 2), 5, "two requests in flight")
    await probe.shutdown()
    replies = await asyncio.gather(*pending)
    assert all(isinstance(r, Ack) for r in replies)
    assert probe.finished == 2


async def _true(value: bool) -> bool:
    return value


async def test_a_connection_closed_for_good_ends_the_service_with_an_error(probe: Probe) -> None:
    # Given a serving service, When nats-py closes its connection for good (as it does on a
    # server error such as a payload over max_payload)
    await probe.bus.nc.close()
    # Then the service stops by itself with a non-zero exit code, so a supervisor restarts it
    await wait_until(_is_set(probe.stopping), 5, "the service to stop")
    assert probe.exit_code == 1


def _is_set(event: asyncio.Event) -> Any:
    async def check() -> bool:
        return event.is_set()

    return check
