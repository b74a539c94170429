"""--find-max: step the arrival rate up and keep the highest one whose P95 holds the target."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

from swarmhub.client import SwarmClient
from swarmhub.config import redact_url
from swarmhub.loadgen.config import LoadConfig
from swarmhub.loadgen.resources import PidSource
from swarmhub.loadgen.runner import execute
from swarmhub.loadgen.schedule import RateSearch
from swarmhub.loadgen.thresholds import EXIT_BREACHED

KEEP_UP = 0.9  # a step passes only if it delivered at least this share of the offered rate


def judge_step(
    report: dict[str, Any], rate: float, target_p95_ms: float, max_error_pct: float
) -> tuple[bool, str]:
    """Whether a step held the target, and why not when it did not."""
    p95 = report["latency_ms"]["p95"]
    error_pct = 100 * report["error_rate"]
    if report["requests"]["ok"] == 0:
        return False, "no request succeeded"
    if p95 > target_p95_ms:
        return False, f"P95 {p95:.1f} ms is above the {target_p95_ms:g} ms target"
    if error_pct > max_error_pct:
        return False, f"error rate {error_pct:.2f} % is above {max_error_pct:g} %"
    if report["throughput_per_s"] < KEEP_UP * rate:
        return False, f"delivered {report['throughput_per_s']:.0f} of {rate:.0f} req/s"
    return True, f"P95 {p95:.1f} ms within the {target_p95_ms:g} ms target"


async def find_max(
    base: LoadConfig,
    client: SwarmClient,
    pids: PidSource,
    search: RateSearch,
) -> dict[str, Any]:
    """Run the steps `search` proposes (each a short open-loop run) and report the best rate."""
    target = base.thresholds.max_p95_ms
    steps: list[dict[str, Any]] = []
    best_report: dict[str, Any] | None = None
    while (rate := search.next_rate()) is not None:
        rate = round(rate, 1)
        print(f"[find-max] step {len(steps) + 1}: {rate:g} req/s", file=sys.stderr, flush=True)
        report = await execute(replace(base, rate=rate), client, pids)
        passed, reason = judge_step(report, rate, target, base.thresholds.max_error_pct)
        search.report(rate, passed)
        steps.append(
            {
                "rate": rate,
                "passed": passed,
                "reason": reason,
                "p50_ms": report["latency_ms"]["p50"],
                "p95_ms": report["latency_ms"]["p95"],
                "p99_ms": report["latency_ms"]["p99"],
                "throughput_per_s": report["throughput_per_s"],
                "error_pct": round(100 * report["error_rate"], 3),
                "late_starts": report["late_starts"],
                "cluster_cpu_pct_mean": report["resources"].get("total_cpu_pct_mean"),
                "loadgen_cpu_pct_mean": report["resources"].get("loadgen_cpu_pct_mean"),
            }
        )
        print(
            f"[find-max]   {'held' if passed else 'missed'}: {reason}", file=sys.stderr, flush=True
        )
        if passed and (best_report is None or rate >= best_report["config"]["rate"]):
            best_report = report
    best = search.best()
    alerts = (
        []
        if best is not None
        else [f"ALERT find_max: no rate from {search.start:g} req/s held P95 <= {target:g} ms"]
    )
    return {
        "tool": "swarmhub load --find-max",
        "scenario": base.scenario,
        "url": redact_url(base.url),
        "target_p95_ms": target,
        "max_rate_per_s": best,
        "steps": steps,
        "best_step": best_report,
        "alerts": alerts,
        "exit_code": 0 if best is not None else EXIT_BREACHED,
    }


def find_max_table(result: dict[str, Any]) -> str:
    """The steps of a search as plain text."""
    lines = [
        f"SwarmHub load --find-max: scenario {result['scenario']}, P95 target "
        f"{result['target_p95_ms']:g} ms, against {result['url']}",
        "",
        f"  {'RATE':>8} {'TPUT':>8} {'P50':>8} {'P95':>8} {'P99':>8} {'ERR%':>6} {'LATE':>6}"
        "  RESULT",
    ]
    for s in result["steps"]:
        lines.append(
            f"  {s['rate']:>8g} {s['throughput_per_s']:>8.1f} {s['p50_ms']:>8.2f} "
            f"{s['p95_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['error_pct']:>6.2f} "
            f"{s['late_starts']:>6}  {'held' if s['passed'] else 'missed: ' + s['reason']}"
        )
    best = result["max_rate_per_s"]
    lines += [
        "",
        f"  highest rate holding the target: {best:g} req/s"
        if best
        else "  no rate held the target",
    ]
    return "\n".join(lines)
