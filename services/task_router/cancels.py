"""Cancelled task ids a router has heard of, and the tasks it holds, so a cancel can stop one."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

REMEMBERED = 100_000
"""Cancelled ids kept in memory; older ones are found through their stored result instead."""


class Cancels:
    """Recently cancelled task ids, and the asyncio task processing each held task."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._holding: dict[str, asyncio.Task[object]] = {}
        self._stopping: set[asyncio.Task[object]] = set()

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._ids

    def add(self, task_id: str) -> asyncio.Task[object] | None:
        """Remember a cancelled id; the held task processing it, marked to be stopped, if any."""
        self._ids[task_id] = None
        self._ids.move_to_end(task_id)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        held = self._holding.get(task_id)
        if held is not None:
            self._stopping.add(held)
        return held

    def hold(self, task_id: str) -> asyncio.Task[object]:
        """Mark the current asyncio task as the one processing `task_id` (until `release`)."""
        current = asyncio.current_task()
        assert current is not None
        self._holding[task_id] = current
        return current

    def release(self, task_id: str, holder: asyncio.Task[object]) -> None:
        """`holder` is done with `task_id`."""
        if self._holding.get(task_id) is holder:
            del self._holding[task_id]

    def stopped(self, holder: asyncio.Task[object]) -> bool:
        """Whether `holder` was cancelled by `add` (then it may carry on as usual)."""
        if holder not in self._stopping:
            return False
        self._stopping.discard(holder)
        holder.uncancel()
        return True
