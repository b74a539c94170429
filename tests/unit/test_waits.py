"""Waits with a timeout: one future and one timer each, the semantics of wait_for kept."""

from __future__ import annotations

import asyncio

import pytest

from swarmhub.waits import Wakeup, within


async def test_within_returns_the_result_of_a_future_resolved_in_time() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(future.set_result, 7)
    assert await within(future, 60.0) == 7


async def test_within_raises_timeout_and_leaves_the_future_done() -> None:
    # Given a future no one resolves
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    # When its time is up
    with pytest.raises(TimeoutError):
        await within(future, 0.0)
    # Then it is done, so whoever would answer it later sees it ended (as the batches check)
    assert future.done()
    assert isinstance(future.exception(), TimeoutError)


async def test_cancelling_the_caller_cancels_the_future() -> None:
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiting = asyncio.ensure_future(within(future, 60.0))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert future.cancelled()


async def test_one_set_wakes_every_waiter_in_the_order_they_came() -> None:
    # Given three waiters with long timeouts
    wakeup = Wakeup()
    woke: list[int] = []

    async def wait(n: int) -> None:
        await wakeup.wait(60.0)
        woke.append(n)

    waiters = [asyncio.ensure_future(wait(n)) for n in range(3)]
    while len(wakeup) < 3:
        await asyncio.sleep(0)
    # When one set() comes
    wakeup.set()
    await asyncio.gather(*waiters)
    # Then all woke, first come first
    assert woke == [0, 1, 2]
    assert len(wakeup) == 0


async def test_a_wait_that_timed_out_or_was_cancelled_leaves_nothing_behind() -> None:
    # A router whose pull loop times out twice a second for days must not keep its old waits
    wakeup = Wakeup()
    for _ in range(100):
        await wakeup.wait(0.0)
    cancelled = asyncio.ensure_future(wakeup.wait(60.0))
    while len(wakeup) < 1:
        await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert len(wakeup) == 0


async def test_a_set_with_no_one_waiting_is_not_remembered() -> None:
    # Given a set() before anyone waits
    wakeup = Wakeup()
    wakeup.set()
    # Then a later waiter is not woken by it: only a later set() wakes it
    waiting = asyncio.ensure_future(wakeup.wait(60.0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    wakeup.set()
    await waiting
