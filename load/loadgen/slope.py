"""Least-squares line fitting, for memory growth over time."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Fit:
    """A fitted line y = intercept + slope * x, with the slope's standard error."""

    slope: float
    intercept: float
    stderr: float
    points: int


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> Fit | None:
    """Ordinary least squares; None with fewer than three points or no spread in x."""
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"xs has {n} values but ys has {len(ys)}; they must pair up.")
    if n < 3:
        return None
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    stderr = math.sqrt(residual / (n - 2) / sxx)
    return Fit(slope, intercept, stderr, n)


def growth_per_hour(seconds: Sequence[float], megabytes: Sequence[float]) -> Fit | None:
    """Fitted growth in MB/hour (slope and stderr scaled) from samples taken at `seconds`."""
    fit = fit_line(seconds, megabytes)
    if fit is None:
        return None
    return Fit(
        fit.slope * SECONDS_PER_HOUR, fit.intercept, fit.stderr * SECONDS_PER_HOUR, fit.points
    )
