"""Least-squares slopes, as used for memory growth in MB/hour."""

from __future__ import annotations

import random

import pytest

from swarmhub.loadgen.slope import fit_line, growth_per_hour


def test_exact_line() -> None:
    fit = fit_line([0, 1, 2, 3], [1.0, 3.0, 5.0, 7.0])
    assert fit is not None
    assert fit.slope == pytest.approx(2.0)
    assert fit.intercept == pytest.approx(1.0)
    assert fit.stderr == pytest.approx(0.0, abs=1e-12)


def test_growth_of_one_mb_per_minute_is_sixty_mb_per_hour() -> None:
    seconds = [float(s) for s in range(0, 600, 10)]
    megabytes = [300.0 + s / 60 for s in seconds]
    fit = growth_per_hour(seconds, megabytes)
    assert fit is not None
    assert fit.slope == pytest.approx(60.0)


def test_flat_noisy_memory_fits_near_zero() -> None:
    rng = random.Random(7)
    seconds = [float(s) for s in range(3600)]
    megabytes = [250.0 + rng.uniform(-1, 1) for _ in seconds]
    fit = growth_per_hour(seconds, megabytes)
    assert fit is not None
    assert abs(fit.slope) < 3 * fit.stderr + 0.5


def test_too_few_points_or_no_spread_gives_none() -> None:
    assert fit_line([1.0, 2.0], [1.0, 2.0]) is None
    assert fit_line([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) is None


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="pair up"):
        fit_line([1.0, 2.0, 3.0], [1.0])
