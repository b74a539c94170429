"""Thresholds a run must hold, their evaluation, and the ALERT lines they turn into."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXIT_BREACHED = 3


@dataclass(frozen=True)
class Thresholds:
    """Limits with the defaults users of this system expect; each is overridable."""

    min_throughput: float = 400.0
    max_p95_ms: float = 200.0
    max_error_pct: float = 1.0
    max_mem_growth_mb_h: float = 5.0
    max_load_avg: float = 6.0
    mem_min_window_s: float = 60.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"Threshold {name} is {value}; thresholds cannot be negative.")


@dataclass(frozen=True)
class Figures:
    """The measured figures thresholds are judged on (None = not measured)."""

    throughput: float
    p95_ms: float | None
    error_pct: float
    mem_growth_mb_h: float | None
    mem_window_s: float
    load_avg_max: float | None
    mem_growth_stderr_mb_h: float = 0.0


@dataclass(frozen=True)
class Verdict:
    """One threshold checked against its figure."""

    name: str
    limit: float
    value: float | None
    breached: bool
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def evaluate(limits: Thresholds, figures: Figures) -> list[Verdict]:
    """Judge every threshold; a figure that could not be measured is noted, not breached."""
    # Judged in whole req/s: a run offered exactly the limit must not fail on timer jitter.
    throughput = float(round(figures.throughput))
    verdicts = [
        Verdict(
            "throughput",
            limits.min_throughput,
            throughput,
            throughput < limits.min_throughput,
            "requests/s must be at least the limit",
        )
    ]
    if figures.p95_ms is None:
        verdicts.append(
            Verdict("p95_latency", limits.max_p95_ms, None, True, "no request succeeded")
        )
    else:
        verdicts.append(
            Verdict(
                "p95_latency",
                limits.max_p95_ms,
                round(figures.p95_ms, 3),
                figures.p95_ms > limits.max_p95_ms,
                "ms, at most the limit",
            )
        )
    verdicts.append(
        Verdict(
            "error_rate",
            limits.max_error_pct,
            round(figures.error_pct, 3),
            figures.error_pct > limits.max_error_pct,
            "percent of measured requests, at most the limit",
        )
    )
    if figures.mem_growth_mb_h is None:
        verdicts.append(
            Verdict("memory_growth", limits.max_mem_growth_mb_h, None, False, "not measured")
        )
    elif figures.mem_window_s < limits.mem_min_window_s:
        verdicts.append(
            Verdict(
                "memory_growth",
                limits.max_mem_growth_mb_h,
                round(figures.mem_growth_mb_h, 2),
                False,
                f"not judged: sampled {figures.mem_window_s:.0f} s after warm-up, "
                f"under the {limits.mem_min_window_s:g} s a slope needs",
            )
        )
    else:
        # Breached only when even the low end of the slope's ~95 % interval is above the limit,
        # so RSS that steps up and down (allocators returning memory) is not read as a leak.
        low = figures.mem_growth_mb_h - 2 * figures.mem_growth_stderr_mb_h
        verdicts.append(
            Verdict(
                "memory_growth",
                limits.max_mem_growth_mb_h,
                round(figures.mem_growth_mb_h, 2),
                low > limits.max_mem_growth_mb_h,
                f"MB/hour of the services' total RSS, fitted slope "
                f"± {2 * figures.mem_growth_stderr_mb_h:.1f} (~95 %); its low end must not "
                "exceed the limit",
            )
        )
    if figures.load_avg_max is None:
        verdicts.append(Verdict("load_average", limits.max_load_avg, None, False, "not measured"))
    else:
        verdicts.append(
            Verdict(
                "load_average",
                limits.max_load_avg,
                round(figures.load_avg_max, 2),
                figures.load_avg_max > limits.max_load_avg,
                "highest 1-minute load average, at most the limit",
            )
        )
    return verdicts


_UNITS = {
    "throughput": ("below", "req/s"),
    "p95_latency": ("above", "ms"),
    "error_rate": ("above", "%"),
    "memory_growth": ("above", "MB/h"),
    "load_average": ("above", ""),
}


def alert_lines(verdicts: list[Verdict]) -> list[str]:
    """One `ALERT` line per breached threshold."""
    lines = []
    for v in verdicts:
        if not v.breached:
            continue
        side, unit = _UNITS.get(v.name, ("beyond", ""))
        value = "n/a" if v.value is None else f"{v.value:g}"
        lines.append(
            f"ALERT {v.name}: {value}{unit and ' ' + unit} is {side} the limit "
            f"{v.limit:g}{unit and ' ' + unit}" + (f" ({v.note})" if v.value is None else "")
        )
    return lines


def exit_code(verdicts: list[Verdict]) -> int:
    """0 when every threshold held, EXIT_BREACHED otherwise."""
    return EXIT_BREACHED if any(v.breached for v in verdicts) else 0
