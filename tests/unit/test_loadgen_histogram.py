"""Percentiles read back from the HDR histogram, in milliseconds."""

from __future__ import annotations

import pytest

from swarmhub.loadgen.histogram import HIGHEST_US, LatencyHistogram


def test_percentiles_of_one_to_a_thousand_ms() -> None:
    # Given the values 1 ms .. 1000 ms, once each
    hist = LatencyHistogram()
    for ms in range(1, 1001):
        hist.record(ms / 1000)
    # Then each percentile is the matching value, within HDR's 3 significant digits
    summary = hist.summary()
    assert summary["count"] == 1000
    for key, expected in (("p50", 500), ("p90", 900), ("p95", 950), ("p99", 990)):
        assert summary[key] == pytest.approx(expected, rel=1e-3)
    assert summary["p99_9"] == pytest.approx(999, rel=1e-3)
    assert summary["max"] == pytest.approx(1000, rel=1e-3)
    assert summary["min"] == pytest.approx(1, rel=1e-3)
    assert summary["mean"] == pytest.approx(500.5, rel=1e-3)


def test_a_single_slow_request_owns_the_tail() -> None:
    hist = LatencyHistogram()
    for _ in range(999):
        hist.record(0.002)
    hist.record(1.5)
    assert hist.percentile_ms(99) == pytest.approx(2.0, rel=1e-3)
    assert hist.percentile_ms(99.95) == pytest.approx(1500, rel=1e-3)
    assert hist.max_ms() == pytest.approx(1500, rel=1e-3)


def test_empty_histogram_reads_zero() -> None:
    summary = LatencyHistogram().summary()
    assert summary["count"] == 0
    assert all(v == 0 for v in summary.values())


def test_out_of_range_values_are_clamped_and_counted() -> None:
    hist = LatencyHistogram()
    hist.record(0.0)
    hist.record(HIGHEST_US / 1e6 * 2)
    assert hist.count == 2
    assert hist.clamped == 2
    assert hist.max_ms() == pytest.approx(HIGHEST_US / 1000, rel=1e-3)


def test_merge_adds_counts() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(0.001)
    b.record(0.003)
    b.record(0.005)
    a.merge(b)
    assert a.count == 3
    assert a.max_ms() == pytest.approx(5.0, rel=1e-3)
