"""The open- and closed-loop drivers against in-process fake scenarios (no server)."""

from __future__ import annotations

import asyncio
import random

import pytest

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.loadgen.drivers import DriveStats, clock, drive_closed, drive_open
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.scenarios import Scenario, ScenarioConfig


class SerialServer(Scenario):
    """Serves one request at a time in `service` seconds; stalls once before request `stall_at`."""

    name = "fake"

    def __init__(self, service: float = 0.001, stall_at: int = -1, stall: float = 0.0) -> None:
        super().__init__(None, ScenarioConfig(), random.Random(0))  # type: ignore[arg-type]
        self.service, self.stall_at, self.stall = service, stall_at, stall
        self.lock = asyncio.Lock()
        self.served = 0

    async def run(self, kind: str, seq: int) -> None:
        async with self.lock:
            if self.served == self.stall_at:
                await asyncio.sleep(self.stall)
            await asyncio.sleep(self.service)
            self.served += 1


class Flaky(Scenario):
    """Fails every third request with a timeout; request `hang` never returns."""

    name = "flaky"

    def __init__(self, hang: int = -1) -> None:
        super().__init__(None, ScenarioConfig(), random.Random(0))  # type: ignore[arg-type]
        self.hang = hang

    async def run(self, kind: str, seq: int) -> None:
        if seq == self.hang:
            await asyncio.Event().wait()
        if seq % 3 == 0:
            raise ServiceError(ErrorCode.TIMEOUT, f"request {seq} timed out")


async def open_loop(scenario: Scenario, rate: float, total: int, drain: float = 5.0) -> Recorder:
    start = clock() + 0.02
    recorder = Recorder(measure_start=start)
    await drive_open(
        scenario,
        recorder,
        start=start,
        rate=rate,
        total=total,
        max_in_flight=10_000,
        drain_timeout=drain,
        stats=DriveStats(),
    )
    return recorder


async def test_open_loop_sends_every_planned_request_on_schedule() -> None:
    recorder = await open_loop(SerialServer(), rate=200.0, total=100)
    assert recorder.total.ok == 100
    assert recorder.window() == pytest.approx(0.5, abs=0.25)
    assert recorder.start_lag.percentile_ms(50) < 20


async def test_open_loop_charges_a_stall_to_the_requests_behind_it() -> None:
    # Given a serial server that stalls 400 ms once, offered 200 requests/s for 1 s
    recorder = await open_loop(SerialServer(stall_at=50, stall=0.4), rate=200.0, total=200)
    # Then the ~80 requests that were due during the stall all show it
    assert recorder.total.ok == 200
    assert recorder.total.latency.percentile_ms(90) > 100
    assert recorder.total.latency.max_ms() > 350


async def test_closed_loop_hides_the_same_stall_behind_one_request() -> None:
    server = SerialServer(stall_at=50, stall=0.4)
    start = clock()
    recorder = Recorder(measure_start=start)
    await drive_closed(
        server,
        recorder,
        concurrency=1,
        measure_start=start,
        end=None,
        count=200,
        hard_deadline=start + 30,
        drain_timeout=5,
        stats=DriveStats(),
    )
    # Exactly `count` requests, and only one of them saw the stall
    assert recorder.total.ok == 200
    assert recorder.total.latency.max_ms() > 350
    assert recorder.total.latency.percentile_ms(99) < 100


async def test_errors_are_counted_by_code() -> None:
    recorder = await open_loop(Flaky(), rate=500.0, total=30)
    assert dict(recorder.total.errors) == {"timeout": 10}
    assert recorder.total.ok == 20
    assert "timed out" in recorder.error_samples["timeout"]


async def test_a_request_that_never_returns_is_cut_off_at_the_drain_limit() -> None:
    recorder = await open_loop(Flaky(hang=4), rate=500.0, total=10, drain=0.2)
    assert recorder.total.errors["cancelled"] == 1
    assert recorder.completed == 10


async def test_closed_loop_stops_at_its_end_time() -> None:
    start = clock()
    recorder = Recorder(measure_start=start + 0.1)
    stats = DriveStats()
    await drive_closed(
        SerialServer(service=0.002),
        recorder,
        concurrency=4,
        measure_start=start + 0.1,
        end=start + 0.4,
        count=None,
        hard_deadline=start + 10,
        drain_timeout=1,
        stats=stats,
    )
    assert clock() - start < 2
    assert recorder.warmup_done > 0
    assert recorder.total.ok > 0
    assert stats.sent == recorder.completed + recorder.warmup_done
