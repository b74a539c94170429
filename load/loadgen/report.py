"""The human-readable summary table, the JSON file and the Markdown report of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LATENCY_COLUMNS = (("p50", "P50"), ("p90", "P90"), ("p95", "P95"), ("p99", "P99"))
LATENCY_COLUMNS_ALL = (*LATENCY_COLUMNS, ("p99_9", "P99.9"), ("max", "max"))


def describe(report: dict[str, Any]) -> str:
    """One sentence naming the scenario, the pacing and the length of a run."""
    cfg = report["config"]
    pacing = (
        f"open loop at {cfg['rate']:g} req/s"
        if report["mode"] == "open"
        else f"closed loop with {cfg['concurrency']} in flight"
    )
    length = (
        f"{cfg['duration_s']:g} s" if cfg["duration_s"] is not None else f"{cfg['count']} requests"
    )
    return (
        f"scenario {report['scenario']}, {pacing}, {length} measured after "
        f"{cfg['warmup_s']:g} s warm-up, against {report['url']}"
    )


def verdict_label(verdict: dict[str, Any]) -> str:
    """BREACHED, ok, or not judged (a figure that was not measured or not long enough)."""
    if verdict["breached"]:
        return "BREACHED"
    if verdict["value"] is None or verdict["note"].startswith("not judged"):
        return "not judged"
    return "ok"


def _latency_cells(latency: dict[str, float], columns: tuple[tuple[str, str], ...]) -> str:
    return "  ".join(f"{label} {latency[key]:.2f}" for key, label in columns)


def summary_table(report: dict[str, Any]) -> str:
    """The end-of-run summary as plain text."""
    req = report["requests"]
    res = report["resources"]
    lag = report["start_lag_ms"]
    lines = [
        f"SwarmHub load: {describe(report)}",
        "",
        f"  requests     sent {req['sent']}, warm-up {req['warmup']}, measured {req['measured']}: "
        f"ok {req['ok']}, errors {req['errors']} ({100 * report['error_rate']:.2f} %)",
        f"  throughput   {report['throughput_per_s']:.1f} req/s "
        f"over {report['completion_span_s']:.2f} s of completions"
        + (
            f" (offered {report['offered_rate_per_s']:g} req/s)"
            if report["offered_rate_per_s"]
            else ""
        ),
        f"  latency ms   {_latency_cells(report['latency_ms'], LATENCY_COLUMNS_ALL)}",
        f"  start lag ms P99 {lag['p99']:.2f}  max {lag['max']:.2f}; late starts (> "
        f"{report['config']['late_threshold_ms']:g} ms) {report['late_starts']}",
    ]
    if report["errors_by_code"]:
        codes = ", ".join(f"{code} {n}" for code, n in report["errors_by_code"].items())
        lines.append(f"  errors       {codes}")
    if res.get("samples"):
        growth = res.get("mem_growth_mb_h")
        lines.append(
            f"  cluster      {len(res['processes'])} processes, RSS {res['total_rss_mb_start']:.1f}"
            f" -> {res['total_rss_mb_end']:.1f} MB (max {res['total_rss_mb_max']:.1f}), growth "
            + (
                f"{growth:+.1f} ± {2 * (res.get('mem_growth_stderr_mb_h') or 0.0):.1f} MB/h"
                if growth is not None
                else "n/a"
            )
            + f" over {res['window_s']:.0f} s; CPU mean {res['total_cpu_pct_mean']:.0f} %"
            f" max {res['total_cpu_pct_max']:.0f} %"
        )
        growths = sorted(
            (
                (p["mem_growth_mb_h"], name)
                for name, p in res["processes"].items()
                if p["mem_growth_mb_h"] is not None
            ),
            reverse=True,
        )
        if growths:
            lines.append(
                "  growth MB/h  "
                + ", ".join(f"{name} {round(g, 1) + 0.0:+.1f}" for g, name in growths)
            )
        lines.append(
            f"  loadgen      CPU mean {res['loadgen_cpu_pct_mean']:.0f} % max "
            f"{res['loadgen_cpu_pct_max']:.0f} %; load average max {res['load_avg_max']:.2f}"
        )
    if len(report["operations"]) > 1:
        lines += ["", f"  {'OPERATION':<10} {'OK':>7} {'ERRORS':>7}  LATENCY MS"]
        for kind, op in report["operations"].items():
            lines.append(
                f"  {kind:<10} {op['ok']:>7} {op['errors']:>7}  "
                f"{_latency_cells(op['latency_ms'], LATENCY_COLUMNS)}"
            )
    lines += ["", f"  {'THRESHOLD':<14} {'VALUE':>10} {'LIMIT':>10}  RESULT"]
    for v in report["thresholds"]:
        value = "n/a" if v["value"] is None else f"{v['value']:g}"
        lines.append(f"  {v['name']:<14} {value:>10} {v['limit']:>10g}  {verdict_label(v)}")
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: Path) -> None:
    """Write the report as JSON (every figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def markdown(report: dict[str, Any], plot_name: str | None) -> str:
    """The report as Markdown: summary, thresholds, per-second series and the plot."""
    lat = report["latency_ms"]
    req = report["requests"]
    lines = [
        "# SwarmHub load report",
        "",
        f"Started {report['started_at']}: {describe(report)}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| measured requests | {req['measured']} (ok {req['ok']}, errors {req['errors']}) |",
        f"| throughput | {report['throughput_per_s']:.1f} req/s |",
        f"| error rate | {100 * report['error_rate']:.2f} % |",
    ]
    for key, label in LATENCY_COLUMNS_ALL:
        lines.append(f"| latency {label} | {lat[key]:.2f} ms |")
    lines.append(f"| late starts | {report['late_starts']} |")
    res = report["resources"]
    if res.get("samples"):
        lines += [
            f"| cluster RSS | {res['total_rss_mb_start']:.1f} → {res['total_rss_mb_end']:.1f} MB |",
            f"| memory growth | {res['mem_growth_mb_h']} MB/h "
            f"(fitted over {res['window_s']:.0f} s) |",
            f"| cluster CPU | mean {res['total_cpu_pct_mean']:.0f} %, "
            f"max {res['total_cpu_pct_max']:.0f} % |",
            f"| load average (max) | {res['load_avg_max']:.2f} |",
        ]
    if report["errors_by_code"]:
        lines.append(
            "| errors by code | "
            + ", ".join(f"{c}: {n}" for c, n in report["errors_by_code"].items())
            + " |"
        )
    lines += [
        "",
        "## Thresholds",
        "",
        "| threshold | value | limit | result | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for v in report["thresholds"]:
        label = verdict_label(v)
        lines.append(
            f"| {v['name']} | {v['value']} | {v['limit']:g} | "
            f"{'**' + label + '**' if v['breached'] else label} | {v['note']} |"
        )
    if report["alerts"]:
        lines += ["", "```text", *report["alerts"], "```"]
    if plot_name:
        lines += ["", f"![latency, throughput and resources over time]({plot_name})"]
    lines += [
        "",
        "## Per second",
        "",
        "| s | ok | errors | P50 ms | P95 ms | P99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["timeseries"]:
        lines.append(
            f"| {row['t']} | {row['ok']} | {row['errors']} | {row['p50_ms']:.2f} | "
            f"{row['p95_ms']:.2f} | {row['p99_ms']:.2f} | {row['max_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown(report: dict[str, Any], path: Path, plot_name: str | None) -> None:
    """Write the Markdown report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(report, plot_name))
