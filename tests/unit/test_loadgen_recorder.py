"""Latency from the intended send time: what coordinated omission would hide, we charge."""

from __future__ import annotations

import pytest

from swarmhub.loadgen.recorder import Recorder, intended_latency


def simulate_single_server(
    arrivals: list[float], service: float, stall_at: int, stall: float
) -> list[float]:
    """Finish times of a one-at-a-time server that stalls once before request `stall_at`."""
    finishes: list[float] = []
    free_at = 0.0
    for i, due in enumerate(arrivals):
        begin = max(due, free_at) + (stall if i == stall_at else 0.0)
        free_at = begin + service
        finishes.append(free_at)
    return finishes


def test_intended_latency_counts_from_when_the_request_was_due() -> None:
    assert intended_latency(10.0, 10.25) == pytest.approx(0.25)
    assert intended_latency(10.0, 9.0) == 0.0  # clocks never yield negative latency


def test_a_stall_is_charged_to_every_request_queued_behind_it() -> None:
    # Given 100 requests/s for 10 s at a 1 ms server that stalls 1 s once
    arrivals = [i / 100 for i in range(1000)]
    finishes = simulate_single_server(arrivals, service=0.001, stall_at=500, stall=1.0)
    honest = Recorder(measure_start=0.0)
    naive = Recorder(measure_start=0.0)
    previous_finish = 0.0
    for due, done in zip(arrivals, finishes, strict=True):
        # A closed-loop client would only have sent once the previous request returned.
        sent = max(due, previous_finish)
        honest.record("task", due, sent, done)
        naive.record("task", sent, sent, done)
        previous_finish = done
    # Then the honest P99 sees the queue the stall built (about 100 requests waited),
    # while measuring from the actual send hides all but the one stalled request.
    assert honest.total.latency.percentile_ms(99) > 500
    assert honest.total.latency.percentile_ms(90) > 100
    assert naive.total.latency.percentile_ms(99) < 5
    assert naive.total.latency.max_ms() == pytest.approx(1001, rel=1e-2)
    # And the requests that could not leave on time are counted as late starts
    assert honest.late_starts > 90
    assert naive.late_starts == 0


def test_warmup_requests_are_not_measured() -> None:
    recorder = Recorder(measure_start=5.0)
    recorder.record("task", 4.9, 4.9, 5.2)
    recorder.record("task", 5.0, 5.0, 5.1)
    assert recorder.warmup_done == 1
    assert recorder.total.ok == 1
    assert recorder.completed == 1


def test_errors_by_code_and_throughput_over_the_window() -> None:
    recorder = Recorder(measure_start=100.0)
    for i in range(8):
        recorder.record("task", 100.0 + i / 4, 100.0 + i / 4, 100.0 + i / 4 + 0.01)
    recorder.record("task", 102.0, 102.0, 102.5, "timeout", "no result")
    recorder.record("cache-get", 102.0, 102.0, 103.0, "unavailable", "no responders")
    assert dict(recorder.total.errors) == {"timeout": 1, "unavailable": 1}
    assert recorder.error_samples["timeout"] == "no result"
    assert recorder.window() == pytest.approx(3.0)
    # 10 completions from 100.01 s to 103.0 s: 9 intervals, 8 of 10 successful
    assert recorder.throughput() == pytest.approx(9 / 2.99 * 8 / 10)
    assert recorder.ops["cache-get"].summary()["errors_by_code"] == {"unavailable": 1}


def test_a_steady_stream_measures_exactly_its_rate() -> None:
    recorder = Recorder(measure_start=0.0)
    for i in range(8000):
        due = i / 400
        recorder.record("task", due, due, due + 0.003)
    assert recorder.throughput() == pytest.approx(400.0)


def test_timeseries_has_a_row_for_every_second_including_quiet_ones() -> None:
    recorder = Recorder(measure_start=0.0)
    recorder.record("task", 0.1, 0.1, 0.2)
    recorder.record("task", 0.3, 0.3, 0.5)
    recorder.record("task", 2.1, 2.1, 2.4, "timeout")
    rows = recorder.timeseries()
    assert [r["t"] for r in rows] == [0, 1, 2]
    assert [(r["ok"], r["errors"]) for r in rows] == [(2, 0), (0, 0), (0, 1)]
    assert rows[0]["max_ms"] == pytest.approx(200, rel=1e-2)
