"""SwarmHub next to the raw pipeline: ratios per step, the headline figures and the table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swarmhub.loadgen.steps import Step

LATENCIES = ("p50", "p95", "p99")


def ratio(hub: float | None, raw: float | None) -> float | None:
    """SwarmHub's figure over the raw pipeline's, 3 decimals; None when either is missing or 0."""
    if hub is None or raw is None or raw <= 0:
        return None
    return round(hub / raw, 3)


def brief(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """Throughput, P50/P95/P99 and errors of one side's step (None when it did not run)."""
    if not figures or "latency_ms" not in figures:
        return None
    lat = figures["latency_ms"]
    return {
        "throughput_per_s": figures["throughput_per_s"],
        **{f"{key}_ms": lat[key] for key in LATENCIES},
        "errors": figures["errors"],
        "cpu_total_us_per_task": figures.get("cpu", {}).get("total_us_per_task"),
    }


def _get(side: dict[str, Any] | None, key: str) -> float | None:
    return None if side is None else side.get(key)


def step_row(step: Step, raw: dict[str, Any] | None, hub: dict[str, Any] | None) -> dict[str, Any]:
    """One step of both sides and SwarmHub/raw of throughput, latencies and CPU per task."""
    mine, theirs = brief(hub), brief(raw)
    ratios = {"throughput": ratio(_get(mine, "throughput_per_s"), _get(theirs, "throughput_per_s"))}
    for key in LATENCIES:
        ratios[key] = ratio(_get(mine, f"{key}_ms"), _get(theirs, f"{key}_ms"))
    ratios["cpu_per_task"] = ratio(
        _get(mine, "cpu_total_us_per_task"), _get(theirs, "cpu_total_us_per_task")
    )
    return {
        "name": step.name,
        "label": step.label,
        "concurrency": step.concurrency,
        "rate": step.rate,
        "raw": theirs,
        "swarmhub": mine,
        "ratio": ratios,
    }


def _steps_of(side: dict[str, Any]) -> dict[str, Any]:
    steps: dict[str, Any] = side.get("steps", {})
    return steps


def compare(
    steps: Sequence[Step], raw: dict[str, Any], hub: dict[str, Any], config: dict[str, Any]
) -> dict[str, Any]:
    """The `baseline` section of the report: both sides, rows, ratios and the headline."""
    rows = [step_row(s, _steps_of(raw).get(s.name), _steps_of(hub).get(s.name)) for s in steps]
    by_name = {row["name"]: row for row in rows}
    first = next((s for s in steps if s.concurrency == 1), None)
    opened = next((s for s in steps if s.rate is not None), None)
    cpu_name = hub.get("cpu_step") or raw.get("cpu_step")
    cpu_raw = (raw.get("cpu_us_per_task") or {}).get("total_us_per_task")
    cpu_hub = (hub.get("cpu_us_per_task") or {}).get("total_us_per_task")
    return {
        "config": config,
        "raw": raw,
        "swarmhub": hub,
        "steps": rows,
        "ratio": {row["name"]: row["ratio"]["throughput"] for row in rows},
        "headline": {
            "p50_ratio_at_1": by_name[first.name]["ratio"]["p50"] if first else None,
            "open_p95_ratio": by_name[opened.name]["ratio"]["p95"] if opened else None,
            "cpu_step": cpu_name,
            "cpu_total_us_per_task": {
                "raw": cpu_raw,
                "swarmhub": cpu_hub,
                "ratio": ratio(cpu_hub, cpu_raw),
            },
        },
        "errors": {
            name: side["error"]
            for name, side in (("raw", raw), ("swarmhub", hub))
            if "error" in side
        },
    }


def _num(value: float | None, width: int, digits: int = 2) -> str:
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def _times(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _row_line(row: dict[str, Any]) -> str:
    raw, hub = row["raw"] or {}, row["swarmhub"] or {}
    cells = [
        f"  {row['label']:<22}",
        _num(raw.get("throughput_per_s"), 9, 1),
        _num(hub.get("throughput_per_s"), 9, 1),
        f"{_times(row['ratio']['throughput']):>8}",
    ]
    for key in LATENCIES:
        cells.append(_num(raw.get(f"{key}_ms"), 8))
        cells.append(_num(hub.get(f"{key}_ms"), 8))
    errors = f"{raw.get('errors', '-')}/{hub.get('errors', '-')}"
    cells.append(f"{errors:>9}")
    return " ".join(cells)


def _cpu_line(label: str, side: dict[str, Any]) -> str:
    cpu = side.get("cpu_us_per_task")
    if not cpu:
        return f"    {label:<10} {side.get('error', 'not measured')}"
    per = cpu["us_per_task"]
    parts = " + ".join(
        f"{name} {_num(us, 0, 1).strip()}"
        for name, us in per.items()
        if name not in cpu["load_generators"]
    )
    driving = ", ".join(
        f"{name} {_num(per.get(name), 0, 1).strip()}" for name in cpu["load_generators"]
    )
    total = _num(cpu["total_us_per_task"], 0, 1).strip()
    tail = f"; load generator: {driving}" if driving else ""
    return f"    {label:<10} {total} = {parts}{tail}"


def _rss_line(label: str, side: dict[str, Any]) -> str:
    rss = side.get("rss_mb")
    if not rss:
        return f"    {label:<10} {side.get('error', 'not measured')}"
    generators = set(rss["load_generators"])
    names = sorted(rss["peak_mb"], key=lambda n: (n in generators, n))

    def one(name: str) -> str:
        idle = rss["idle_mb"].get(name)
        idle_text = f"{idle:.1f}" if idle is not None else "-"
        mark = " (load generator)" if name in generators else ""
        return f"{name}{mark} {idle_text} -> {rss['peak_mb'][name]:.1f}"

    return (
        f"    {label:<10} total {rss['idle_total_mb']:.1f} -> {rss['peak_total_mb']:.1f}; "
        + ", ".join(one(n) for n in names)
    )


def comparison_table(baseline: dict[str, Any]) -> str:
    """Both sides step by step, the ratios, CPU per task and RSS, as plain text."""
    cfg = baseline["config"]
    head = (
        f"  {'STEP':<22} {'RAW/s':>9} {'HUB/s':>9} {'HUB/RAW':>8} "
        + " ".join(f"{'RAW ' + k.upper():>8} {'HUB ' + k.upper():>8}" for k in LATENCIES)
        + f" {'ERR R/H':>9}"
    )
    lines = [
        f"SwarmHub against a raw nats-py JetStream pipeline on this machine ({cfg['capability']!r} "
        f"tasks of {cfg['task_bytes']} bytes, {cfg['seconds']:g} s per step after "
        f"{cfg['warmup_s']:g} s warm-up; latency in ms, throughput in tasks/s)",
        "",
        head,
        *(_row_line(row) for row in baseline["steps"]),
        "",
    ]
    headline = baseline["headline"]
    rows = {row["name"]: row for row in baseline["steps"]}
    first = next((r for r in baseline["steps"] if r["concurrency"] == 1), None)
    opened = next((r for r in baseline["steps"] if r["rate"] is not None), None)
    if first is not None:
        raw, hub = first["raw"] or {}, first["swarmhub"] or {}
        lines.append(
            f"  P50 at 1 in flight: SwarmHub/raw {_times(headline['p50_ratio_at_1'])} "
            f"({_num(hub.get('p50_ms'), 0).strip()} vs {_num(raw.get('p50_ms'), 0).strip()} ms)"
        )
    if opened is not None:
        raw, hub = opened["raw"] or {}, opened["swarmhub"] or {}
        lines.append(
            f"  P95 of the open loop at {opened['rate']:g}/s: SwarmHub/raw "
            f"{_times(headline['open_p95_ratio'])} ({_num(hub.get('p95_ms'), 0).strip()} vs "
            f"{_num(raw.get('p95_ms'), 0).strip()} ms)"
        )
    cpu_name = headline["cpu_step"]
    cpu_label = rows[cpu_name]["label"] if cpu_name in rows else "-"
    lines += [
        "",
        f"  CPU µs per task, {cpu_label} (user+system over the whole step / tasks it finished); "
        f"SwarmHub/raw {_times(headline['cpu_total_us_per_task']['ratio'])}",
        _cpu_line("raw", baseline["raw"]),
        _cpu_line("SwarmHub", baseline["swarmhub"]),
        "  RSS MB, idle before any load -> peak under the steps' load",
        _rss_line("raw", baseline["raw"]),
        _rss_line("SwarmHub", baseline["swarmhub"]),
    ]
    for side, message in baseline.get("errors", {}).items():
        lines.append(f"  {side} failed: {message}")
    return "\n".join(lines)
