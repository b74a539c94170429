"""The split of a lone task's way into phases, from its result's own timings."""

from __future__ import annotations

import pytest

from swarmhub.loadgen.phases import Phases, medians, split
from swarmhub.schemas import ResultStatus, TaskResult, Timings


def test_a_result_splits_into_dispatch_run_and_delivery() -> None:
    result = TaskResult(
        task_id="t1",
        status=ResultStatus.SUCCEEDED,
        timings=Timings(queued_ms=1.5, run_ms=0.1, total_ms=3.0),
    )
    phases = split(result, created_at=100.0, heard_at=100.004)
    assert phases.to_dispatch == pytest.approx(1.5)
    assert phases.to_result == pytest.approx(1.5)
    assert phases.to_client == pytest.approx(1.0)
    assert phases.total == pytest.approx(4.0)


def test_medians_are_taken_per_phase() -> None:
    samples = [Phases(1, 10, 100), Phases(2, 30, 300), Phases(3, 20, 200)]
    assert medians(samples) == Phases(2, 20, 200)
