"""heap.settle: start-up objects frozen, young collections less often."""

from __future__ import annotations

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
