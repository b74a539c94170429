"""Threshold evaluation, ALERT lines and the exit code."""

from __future__ import annotations

import pytest

from swarmhub.loadgen.thresholds import (
    EXIT_BREACHED,
    Figures,
    Thresholds,
    alert_lines,
    evaluate,
    exit_code,
)

HEALTHY = Figures(
    throughput=850.0,
    p95_ms=40.0,
    error_pct=0.1,
    mem_growth_mb_h=1.0,
    mem_window_s=600.0,
    load_avg_max=2.0,
)


def breached(figures: Figures, limits: Thresholds | None = None) -> set[str]:
    return {v.name for v in evaluate(limits or Thresholds(), figures) if v.breached}


def test_defaults_are_the_ones_users_expect() -> None:
    limits = Thresholds()
    assert (limits.min_throughput, limits.max_p95_ms, limits.max_error_pct) == (400, 200, 1.0)
    assert (limits.max_mem_growth_mb_h, limits.max_load_avg) == (5.0, 6.0)


def test_a_healthy_run_breaches_nothing() -> None:
    verdicts = evaluate(Thresholds(), HEALTHY)
    assert breached(HEALTHY) == set()
    assert alert_lines(verdicts) == []
    assert exit_code(verdicts) == 0


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"throughput": 399.4}, "throughput"),
        ({"p95_ms": 200.1}, "p95_latency"),
        ({"p95_ms": None}, "p95_latency"),
        ({"error_pct": 1.5}, "error_rate"),
        ({"mem_growth_mb_h": 5.1}, "memory_growth"),
        ({"load_avg_max": 6.01}, "load_average"),
    ],
)
def test_each_threshold_fires_alone(change: dict[str, float | None], name: str) -> None:
    figures = Figures(**{**HEALTHY.__dict__, **change})
    verdicts = evaluate(Thresholds(), figures)
    assert breached(figures) == {name}
    lines = alert_lines(verdicts)
    assert len(lines) == 1
    assert lines[0].startswith(f"ALERT {name}:")
    assert exit_code(verdicts) == EXIT_BREACHED


def test_limits_are_inclusive() -> None:
    edge = Figures(400.0, 200.0, 1.0, 5.0, 600.0, 6.0)
    assert breached(edge) == set()


def test_throughput_is_judged_in_whole_requests_per_second() -> None:
    assert breached(Figures(**{**HEALTHY.__dict__, "throughput": 399.6})) == set()
    assert breached(Figures(**{**HEALTHY.__dict__, "throughput": 399.4})) == {"throughput"}


def test_overrides_apply() -> None:
    strict = Thresholds(max_p95_ms=0.001)
    assert breached(HEALTHY, strict) == {"p95_latency"}
    lines = alert_lines(evaluate(strict, HEALTHY))
    assert lines == ["ALERT p95_latency: 40 ms is above the limit 0.001 ms"]


def test_memory_growth_is_not_judged_on_a_short_window() -> None:
    short = Figures(**{**HEALTHY.__dict__, "mem_growth_mb_h": 900.0, "mem_window_s": 5.0})
    verdict = next(v for v in evaluate(Thresholds(), short) if v.name == "memory_growth")
    assert not verdict.breached
    assert verdict.note.startswith("not judged")
    assert breached(short, Thresholds(mem_min_window_s=5.0)) == {"memory_growth"}


def test_memory_growth_within_its_noise_is_not_a_breach() -> None:
    noisy = Figures(**{**HEALTHY.__dict__, "mem_growth_mb_h": 40.0, "mem_growth_stderr_mb_h": 20.0})
    assert breached(noisy) == set()
    steady = Figures(**{**HEALTHY.__dict__, "mem_growth_mb_h": 40.0, "mem_growth_stderr_mb_h": 5.0})
    assert breached(steady) == {"memory_growth"}


def test_unmeasured_resources_do_not_breach() -> None:
    blind = Figures(**{**HEALTHY.__dict__, "mem_growth_mb_h": None, "load_avg_max": None})
    assert breached(blind) == set()


def test_negative_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        Thresholds(max_p95_ms=-1)
