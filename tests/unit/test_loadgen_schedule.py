"""The open-loop arrival schedule and the --find-max rate search."""

from __future__ import annotations

import pytest

from swarmhub.loadgen.schedule import (
    RateSearch,
    intended_offset,
    measure_start_offset,
    planned_requests,
)


def test_requests_are_due_at_a_constant_rate() -> None:
    offsets = [intended_offset(i, 250.0) for i in range(5)]
    assert offsets == pytest.approx([0.0, 0.004, 0.008, 0.012, 0.016])


def test_planned_requests_cover_warmup_then_duration_or_count() -> None:
    assert planned_requests(100.0, 1.0, 3.0, None) == 400
    assert planned_requests(100.0, 0.0, None, 50) == 50
    assert planned_requests(33.0, 0.5, 1.0, None) == 17 + 33


def test_measurement_starts_with_the_first_request_after_warmup() -> None:
    assert measure_start_offset(100.0, 1.0) == pytest.approx(1.0)
    assert measure_start_offset(33.0, 0.5) == pytest.approx(17 / 33)


def test_planned_requests_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="above 0"):
        planned_requests(0.0, 1.0, 1.0, None)
    with pytest.raises(ValueError, match="duration or a count"):
        planned_requests(10.0, 1.0, None, None)


def run_search(search: RateSearch, capacity: float) -> list[float]:
    tried = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.report(rate, rate <= capacity)
    return tried


def test_search_ramps_then_bisects_towards_capacity() -> None:
    search = RateSearch(start=100.0, factor=2.0, max_steps=10, resolution=0.05)
    tried = run_search(search, capacity=700.0)
    assert tried[:4] == [100.0, 200.0, 400.0, 800.0]
    assert tried[4] == 600.0  # halfway between the best pass and the first miss
    best = search.best()
    assert best is not None
    assert 600.0 <= best <= 700.0
    assert len(tried) <= 10


def test_search_is_bounded_by_max_steps() -> None:
    search = RateSearch(start=10.0, factor=1.5, max_steps=3)
    assert len(run_search(search, capacity=1e9)) == 3
    assert search.best() == pytest.approx(22.5)


def test_search_stops_when_even_the_start_misses() -> None:
    search = RateSearch(start=100.0)
    assert run_search(search, capacity=50.0) == [100.0]
    assert search.best() is None


def test_search_stops_at_max_rate() -> None:
    search = RateSearch(start=100.0, factor=10.0, max_steps=10, max_rate=5000.0)
    assert run_search(search, capacity=1e9) == [100.0, 1000.0]


def test_search_rejects_a_factor_that_does_not_grow() -> None:
    with pytest.raises(ValueError, match="factor"):
        RateSearch(start=100.0, factor=1.0)
