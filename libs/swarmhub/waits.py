"""Waits with a timeout for the per-task path: one future and one timer each.

`asyncio.wait_for` makes a waiter future, callbacks and (for a coroutine) a Task per call, and a
shared future needs `shield` on top: about three times the cost of a bare future and a timer
(`bench/waits.py` measures both). These do the same with the one future and the one timer.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def _expire(future: asyncio.Future[T]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def within(future: asyncio.Future[T], timeout: float) -> T:
    """The result of `future`; TimeoutError once `timeout` seconds pass first (the future then
    holds that TimeoutError, so it counts as done). Cancelling the caller cancels the future."""
    handle = asyncio.get_running_loop().call_later(max(0.0, timeout), _expire, future)
    try:
        return await future
    finally:
        handle.cancel()


class Wakeup:
    """Waiters that one `set()` wakes together (in the order they began to wait); each wait also
    ends by itself after its timeout. A `set()` with no one waiting is not remembered."""

    def __init__(self) -> None:
        self._waiters: dict[asyncio.Future[None], None] = {}

    def __len__(self) -> int:
        return len(self._waiters)

    def set(self) -> None:
        """Wake every current waiter."""
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters:
            _release(waiter)

    async def wait(self, timeout: float) -> None:
        """Return at the next `set()`, or after `timeout` seconds, whichever comes first."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters[waiter] = None
        handle = loop.call_later(max(0.0, timeout), _release, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiters.pop(waiter, None)
