"""The PNG plot of a run: latency percentiles, throughput and resource use over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Three stacked panels sharing the time axis (seconds after warm-up)."""
    rows = report["timeseries"]
    samples = [s for s in report["resource_samples"] if s["t"] >= 0]
    fig, (lat_ax, tput_ax, res_ax) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    t = [r["t"] + 0.5 for r in rows]
    for key, label in (("p50_ms", "P50"), ("p95_ms", "P95"), ("p99_ms", "P99"), ("max_ms", "max")):
        lat_ax.plot(t, [r[key] for r in rows], label=label, marker=".")
    lat_ax.set_ylabel("latency (ms)")
    lat_ax.set_title(f"SwarmHub load: {report['scenario']} ({report['mode']} loop)")
    lat_ax.legend(loc="upper left")
    lat_ax.grid(alpha=0.3)
    tput_ax.plot(t, [r["ok"] for r in rows], label="ok / s", marker=".")
    tput_ax.plot(t, [r["errors"] for r in rows], label="errors / s", marker=".")
    if report.get("offered_rate_per_s"):
        tput_ax.axhline(report["offered_rate_per_s"], linestyle="--", color="grey", label="offered")
    tput_ax.set_ylabel("requests / s")
    tput_ax.legend(loc="upper left")
    tput_ax.grid(alpha=0.3)
    st = [s["t"] for s in samples]
    res_ax.plot(st, [s["total_rss_mb"] for s in samples], label="cluster RSS (MB)", color="C0")
    res_ax.set_ylabel("RSS (MB)")
    res_ax.set_xlabel("seconds after warm-up")
    res_ax.grid(alpha=0.3)
    cpu_ax = res_ax.twinx()
    cpu_ax.plot(st, [s["total_cpu_pct"] for s in samples], label="cluster CPU %", color="C1")
    cpu_ax.plot(st, [s["self_cpu_pct"] for s in samples], label="loadgen CPU %", color="C2")
    cpu_ax.set_ylabel("CPU % (100 = one core)")
    handles = res_ax.get_legend_handles_labels()[0] + cpu_ax.get_legend_handles_labels()[0]
    labels = res_ax.get_legend_handles_labels()[1] + cpu_ax.get_legend_handles_labels()[1]
    res_ax.legend(handles, labels, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_steps_plot(steps: list[dict[str, Any]], target_ms: float, path: Path) -> None:
    """For --find-max: P95 and achieved throughput against the offered rate of each step."""
    fig, (lat_ax, tput_ax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    rates = [s["rate"] for s in steps]
    lat_ax.plot(rates, [s["p95_ms"] for s in steps], marker="o", label="P95")
    lat_ax.axhline(target_ms, linestyle="--", color="red", label="target")
    lat_ax.set_ylabel("P95 latency (ms)")
    lat_ax.legend(loc="upper left")
    lat_ax.grid(alpha=0.3)
    tput_ax.plot(rates, [s["throughput_per_s"] for s in steps], marker="o", label="achieved")
    tput_ax.plot(rates, rates, linestyle="--", color="grey", label="offered")
    tput_ax.set_xlabel("offered rate (req/s)")
    tput_ax.set_ylabel("throughput (req/s)")
    tput_ax.legend(loc="upper left")
    tput_ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
