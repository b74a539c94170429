"""The table of `swarmhub bench`: our figures next to the original's and the targets."""

from __future__ import annotations

from typing import Any

from swarmhub.loadgen.bench import ORIGINAL, TARGETS


def target_text(target: dict[str, Any]) -> str:
    """`>= 854.70 ops/s` or `<= 1 MB growth`."""
    if "min" in target:
        return f">= {target['min']:.2f} {target['unit']}"
    return f"<= {target['max']:g} {target['unit']}"


def original_text(name: str) -> str:
    """The original's figure as the table shows it."""
    original = ORIGINAL[name]
    if name == "memory":
        return f"{original['value']:.0f} {original['unit']}"
    return f"{original['value']:.2f} {original['unit']}"


def ours_text(name: str, figures: dict[str, Any]) -> str:
    """Our headline figure of a row."""
    if "error" in figures:
        return "error"
    if name == "memory":
        return f"{figures['growth_mb']:+.2f} MB RSS"
    return f"{figures['ops_per_s']:.2f} ops/s"


def met_text(figures: dict[str, Any]) -> str:
    """yes / NO / - (not measured)."""
    if "met" not in figures:
        return "-"
    return "yes" if figures["met"] else "NO"


def note_text(name: str, figures: dict[str, Any]) -> str:
    """What the row measured, with the sequential P50 beside concurrent figures."""
    if "error" in figures:
        return str(figures["error"])
    if name == "memory":
        return (
            f"{figures['what']}: services {figures['services_mb_before']:.1f} -> "
            f"{figures['services_mb_after']:.1f} MB; nats-server {figures['nats_growth_mb']:+.2f} "
            f"MB; all {figures['total_growth_mb']:+.2f} MB"
        )
    seq = figures["sequential"]
    lat = figures["latency_ms"]
    note = (
        f"{figures['what']} in {figures['elapsed_s'] * 1000:.1f} ms (P50 {lat['p50']:.2f} "
        f"max {lat['max']:.2f} ms); one at a time {seq['ops_per_s']:.2f} ops/s, "
        f"sequential P50 {seq['latency_ms']['p50']:.2f} ms"
    )
    extra = figures.get("target", {}).get("note")
    return f"{note}; target: {extra}" if extra else note


def growth_line(figures: dict[str, Any]) -> str | None:
    """The memory row's growth per process, as a line under it."""
    by_process = figures.get("by_process_growth_mb")
    if not by_process:
        return None
    cells = ", ".join(f"{name} {mb:+.2f}" for name, mb in sorted(by_process.items()))
    return f"  {'':<26} growth MB by process: {cells}"


def bench_table(result: dict[str, Any]) -> str:
    """Our figures next to the original's and the targets, then saturation, as plain text."""
    lines = [
        f"SwarmHub bench against {result['url']} (over the real broker; original figures are "
        "the AI Orchestrator Hub's)",
        "",
        f"  {'FIGURE':<26} {'ORIGINAL':>14} {'TARGET':>18} {'SWARMHUB':>16}  {'MET':<4} NOTES",
    ]
    for name, original in ORIGINAL.items():
        figures = result["results"].get(name, {"error": "not run"})
        label = f"{name.replace('_', ' ')} ({original['iterations']:,})"
        lines.append(
            f"  {label:<26} {original_text(name):>14} {target_text(TARGETS[name]):>18} "
            f"{ours_text(name, figures):>16}  {met_text(figures):<4} {note_text(name, figures)}"
        )
        if name == "memory" and "error" not in figures:
            extra = growth_line(figures)
            if extra:
                lines.append(extra)
    sat = result["results"].get("saturation", {"error": "not run"})
    if "error" in sat:
        lines.append(
            f"  {'saturation':<26} {'-':>14} {'-':>18} {'error':>16}  {'-':<4} {sat['error']}"
        )
    else:
        lat = sat["latency_ms"]
        lines.append(
            f"  {'saturation (closed loop)':<26} {'-':>14} {'-':>18} "
            f"{sat['throughput_per_s']:>10.1f} ops/s  {'-':<4} {sat['concurrency']} in flight for "
            f"{sat['seconds']:g} s; P50 {lat['p50']:.1f} P95 {lat['p95']:.1f} P99 {lat['p99']:.1f} "
            f"P99.9 {lat['p99_9']:.1f} max {lat['max']:.1f} ms"
        )
    return "\n".join(lines)
