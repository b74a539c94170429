"""heap.settle: start-up objects frozen, young collections less often."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from swarmhub import heap


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    """Give the test process its collector back as it was."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_what_start_up_made_and_collects_young_objects_less_often() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 10, 10)


async def test_a_settled_service_collects_in_full_every_period() -> None:
    # Given a fake clock that counts the periods slept and a collector that counts its runs
    slept: list[float] = []
    collected: list[int] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 3:
            raise asyncio.CancelledError  # the service stops

    def collect() -> int:
        collected.append(len(slept))
        return 0

    # When the loop runs through three periods
    with pytest.raises(asyncio.CancelledError):
        await heap.collect_often(60.0, sleep, collect)
    # Then it collected once after each period, never before the first
    assert slept == [60.0] * 4
    assert collected == [1, 2, 3]
