"""Dispatch batches against a real nats-server and a real agent-worker: answers stream back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import pytest

from swarmhub import codec, subjects
from swarmhub.agent_worker.service import AgentWorker
from swarmhub.batching import BatchDispatcher
from swarmhub.bus import Bus
from swarmhub.config import BusSettings, RuntimeSettings, WorkerSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import Task


@pytest.fixture
async def worker(nats_url: str) -> AsyncIterator[AgentWorker]:
    service = AgentWorker(
        WorkerSettings(agent_id="batch-agent", concurrency=4, memoize=False),
        bus_settings=BusSettings(nats_url=nats_url),
        runtime_settings=RuntimeSettings(drain_timeout=5),
    )
    await service.start()
    yield service
    await service.shutdown()


@pytest.fixture
async def dispatcher(nats_url: str) -> AsyncIterator[BatchDispatcher]:
    nc = await nats.connect(nats_url)
    batches = BatchDispatcher(Bus(nc, BusSettings(nats_url=nats_url)), subjects.agent_batch)
    await batches.start()
    yield batches
    await batches.stop()
    await nc.close()


def _item(capability: str, payload: dict[str, object]) -> bytes:
    task = Task(capability=capability, payload=payload)
    return codec.pack({"task": task.model_dump(), "attempt": 1})


async def test_fast_answers_do_not_wait_for_slow_ones_in_the_same_batch(
    worker: AgentWorker, dispatcher: BatchDispatcher
) -> None:
    # Given one slow and two fast attempts sent to one agent in the same turn (one batch)
    slow = dispatcher.submit("batch-agent", _item("sleep", {"ms": 500}))
    fast = [dispatcher.submit("batch-agent", _item("echo", {"n": n})) for n in range(2)]
    # When the fast ones are answered
    answers = await asyncio.wait_for(asyncio.gather(*fast), timeout=5)
    # Then they came back with their outputs while the slow one still runs
    assert [a.output for a in answers] == [{"n": 0}, {"n": 1}]
    assert not slow.done()
    assert (await asyncio.wait_for(slow, timeout=5)).output == {"slept_ms": 500.0}


async def test_each_item_fails_on_its_own(worker: AgentWorker, dispatcher: BatchDispatcher) -> None:
    bad = dispatcher.submit("batch-agent", _item("fail", {"retryable": False}))
    good = dispatcher.submit("batch-agent", _item("echo", {"ok": True}))
    with pytest.raises(ServiceError) as info:
        await asyncio.wait_for(bad, timeout=5)
    assert info.value.code is ErrorCode.HANDLER_ERROR and not info.value.retryable
    assert (await asyncio.wait_for(good, timeout=5)).output == {"ok": True}


async def test_items_over_capacity_are_answered_busy_at_once(
    worker: AgentWorker, dispatcher: BatchDispatcher
) -> None:
    # Given more attempts in one batch than the agent's capacity of 4
    futures = [dispatcher.submit("batch-agent", _item("sleep", {"ms": 300})) for _ in range(6)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout=5)
    busy = [r for r in results if isinstance(r, ServiceError)]
    # Then the excess is refused as busy (retryable), the rest ran
    assert len(busy) == 2 and all(r.code is ErrorCode.BUSY and r.retryable for r in busy)
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 4


async def test_a_batch_to_a_missing_agent_fails_unavailable(dispatcher: BatchDispatcher) -> None:
    futures = [dispatcher.submit("nobody-home", _item("echo", {})) for _ in range(3)]
    for future in futures:
        with pytest.raises(ServiceError) as info:
            await asyncio.wait_for(future, timeout=5)
        assert info.value.code is ErrorCode.UNAVAILABLE and info.value.retryable
    dispatcher.sweep()
    assert not dispatcher._waiting
