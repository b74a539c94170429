"""Micro-benchmark: a wait with a timeout, as `asyncio.wait_for` and as `swarmhub.waits`.

    .venv/bin/python bench/waits.py [rounds]

Prints µs per wait for each way; compare the ratios of one run (the machine is shared).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

import uvloop

from swarmhub.waits import Wakeup, within


async def _time(
    rounds: int, one: Callable[[asyncio.AbstractEventLoop], Awaitable[object]]
) -> float:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(rounds):
        await one(loop)
    return (time.perf_counter() - started) / rounds * 1e6


async def main(rounds: int) -> None:
    """Time each way of waiting for a future that another callback resolves."""

    async def reply_wait_for(loop: asyncio.AbstractEventLoop) -> object:
        future = loop.create_future()
        loop.call_soon(future.set_result, 1)
        return await asyncio.wait_for(future, 5.0)

    async def reply_within(loop: asyncio.AbstractEventLoop) -> object:
        future = loop.create_future()
        loop.call_soon(future.set_result, 1)
        return await within(future, 5.0)

    async def shared_wait_for(loop: asyncio.AbstractEventLoop) -> object:
        shared = loop.create_future()
        loop.call_soon(shared.set_result, None)
        return await asyncio.wait_for(asyncio.shield(shared), 1.0)

    wakeup = Wakeup()

    async def shared_wakeup(loop: asyncio.AbstractEventLoop) -> object:
        loop.call_soon(wakeup.set)
        return await wakeup.wait(1.0)

    event = asyncio.Event()

    async def event_wait_for(loop: asyncio.AbstractEventLoop) -> object:
        event.clear()
        loop.call_soon(event.set)
        return await asyncio.wait_for(event.wait(), 0.5)

    rows = [
        ("reply: wait_for(future)", reply_wait_for),
        ("reply: within(future)", reply_within),
        ("shared: wait_for(shield(future))", shared_wait_for),
        ("event: wait_for(Event.wait())", event_wait_for),
        ("shared or event: Wakeup.wait()", shared_wakeup),
    ]
    for name, one in rows:
        print(f"{name:36} {await _time(rounds, one):6.2f} µs")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000))
