"""Render docs/OPERATIONS.md's pictures from a real run.

`python -m swarmhub.loadgen.opsdoc --out docs/img`

Starts a local cluster with every process on its own metrics port and exporting traces to an
in-process OTLP receiver, a local Prometheus scraping it every second with the shipped rules,
drives a mixed load (echo, cpu, and a failing capability that retries), then draws the main
dashboard panels from Prometheus's own answers and the span tree of one retried task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from swarmhub.client import SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port, free_port_block
from swarmhub.loadgen.otlp_sink import Receiver, Span
from swarmhub.observe import LocalPrometheus
from swarmhub.schemas import Task

LATENCY = "histogram_quantile({q}, sum by (le) (rate(swarmhub_task_duration_seconds_bucket[10s])))"
IN_FLIGHT = 'sum by (job) ({__name__=~"swarmhub_router_in_flight|swarmhub_worker_in_flight"})'

PANELS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Throughput by status (tasks/s)",
        [("sum by (status) (rate(swarmhub_tasks_completed_total[10s]))", "{status}")],
    ),
    ("Task latency (s)", [(LATENCY.format(q=q), f"P{int(q * 100)}") for q in (0.5, 0.95, 0.99)]),
    ("Tasks held by routers, running on workers", [(IN_FLIGHT, "{job}")]),
    (
        "Retries and dead letters (/s)",
        [
            ("sum(rate(swarmhub_task_retries_total[10s]))", "retries"),
            ("sum(rate(swarmhub_dead_letters_total[10s]))", "dead letters"),
        ],
    ),
    (
        "Resident memory (MB)",
        [('process_resident_memory_bytes{job=~"swarmhub-.*"} / 1e6', "{job}")],
    ),
    ("Agents alive", [("max(swarmhub_agents_alive)", "agents")]),
]


def query_range(prometheus: LocalPrometheus, expr: str, start: float, end: float) -> Any:
    """Prometheus's answer to a range query, one point a second."""
    args = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 1})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query_range?{args}", timeout=10) as r:
        return json.loads(r.read())["data"]["result"]


async def traced_failure(url: str) -> str:
    """Submit one task that fails, is retried and fails again (this process traces it whole),
    then 100 more spread over the next 40 s."""
    async with SwarmClient.connect(url) as client:
        task = Task(capability="fail", payload={"message": "downstream API said 503"})
        await client.submit(task.model_copy(update={"max_attempts": 2}))
        await client.wait(task.id, timeout=60, check=False)
        # Failures and retries spread over the run that follows (held until their not_before).
        now = time.time()
        await client.submit_many(
            Task(capability="fail", max_attempts=2, not_before=now + 2 + i * 0.4)
            for i in range(100)
        )
        return task.id


def drive(url: str, seconds: float, rate: float) -> None:
    """`swarmhub load --scenario mixed` at `rate` per second in its own, untraced process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMHUB_OTLP", "OTEL_"))}
    subprocess.run(
        [
            *(sys.executable, "-m", "swarmhub", "load", "--url", url, "--scenario", "mixed"),
            *("--rate", str(rate), "--duration", str(seconds), "--quiet"),
        ],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        timeout=seconds + 120,
    )


def draw_dashboard(prometheus: LocalPrometheus, start: float, end: float, out: Path) -> None:
    """The dashboard's main panels, from Prometheus's range queries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (title, exprs) in zip(axes.flat, PANELS, strict=True):
        for expr, label in exprs:
            for series in query_range(prometheus, expr, start, end):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=label.format_map(series["metric"]))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    fig.suptitle("SwarmHub — rendered from a local Prometheus scraping a real run", fontsize=12)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def trace_tree(spans: list[Span]) -> list[tuple[int, Span]]:
    """Spans in tree order with their depth (children by start time)."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else "", []).append(s)
    ordered: list[tuple[int, Span]] = []

    def walk(parent: str, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x.start_ns):
            ordered.append((depth, s))
            walk(s.span_id, depth + 1)

    walk("", 0)
    return ordered


def draw_trace(spans: list[Span], out: Path) -> str:
    """A waterfall of one trace (as Jaeger shows it); returns the same tree as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree = trace_tree(spans)
    t0 = min(s.start_ns for s in spans)
    fig, ax = plt.subplots(figsize=(13, 0.42 * len(tree) + 1))
    colors = {"ERROR": "#d9534f", "UNSET": "#5b8def", "OK": "#5cb85c"}
    lines = []
    for row, (depth, s) in enumerate(tree):
        begin, length = (s.start_ns - t0) / 1e6, max((s.end_ns - s.start_ns) / 1e6, 0.02)
        ax.barh(row, length, left=begin, color=colors.get(s.status, "#999"), height=0.6)
        text = f"{'  ' * depth}{s.service}: {s.name} [{s.kind}]"
        ax.text(begin + length + 0.2, row, f"{text}  {length:.2f} ms", va="center", fontsize=7)
        lines.append(f"{'  ' * depth}{s.service}: {s.name} [{s.kind}] {s.status} {length:.2f} ms")
    span_ms = (max(s.end_ns for s in spans) - t0) / 1e6
    ax.set_xlim(0, span_ms * 1.7)  # room for the labels right of the bars
    ax.invert_yaxis()
    ax.set_yticks([])
    ax.set_xlabel("ms since the first span (red: ERROR)")
    ax.set_title("One task's trace: attempt 1 fails, the retry fails too, the task ends failed")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return "\n".join(lines)


def main() -> None:
    """Run it all and write dashboard.png, trace.png and trace.txt to --out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=300.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    receiver = Receiver().start()
    # This process traces the one task drawn, whole; the services sample 1 % of the rest.
    os.environ["SWARMHUB_OTLP_ENDPOINT"] = receiver.url
    os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_always_on"
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(
            ClusterConfig(
                data_dir=Path(tmp),
                port=free_port(),
                metrics_port=free_port_block(6),
                extra_env={
                    "SWARMHUB_OTLP_ENDPOINT": receiver.url,
                    "OTEL_BSP_SCHEDULE_DELAY": "200",
                    "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                    "OTEL_TRACES_SAMPLER_ARG": "0.01",
                },
            ),
            on_event=lambda text: None,
        ).start()
        prometheus = LocalPrometheus(
            Path(tmp) / "prometheus", cluster.targets_dir, free_port(), interval=1.0
        )
        try:
            prometheus.start()
            time.sleep(8)  # agents register, Prometheus takes its first scrapes
            start = time.time()
            failed_id = asyncio.run(traced_failure(cluster.url))
            drive(cluster.url, args.seconds, args.rate)
            time.sleep(6)  # the last scrapes and span exports
            end = time.time()
            draw_dashboard(prometheus, start - 5, end, args.out / "dashboard.png")
            spans = [
                s for s in receiver.snapshot() if s.trace_id in _trace_ids(receiver, failed_id)
            ]
            (args.out / "trace.txt").write_text(draw_trace(spans, args.out / "trace.png") + "\n")
        finally:
            prometheus.stop()
            cluster.stop()
            receiver.stop()
    print(f"wrote {args.out}/dashboard.png, trace.png, trace.txt")


def _trace_ids(receiver: Receiver, task_id: str) -> set[str]:
    return {s.trace_id for s in receiver.snapshot() if s.attrs.get("swarmhub.task.id") == task_id}


if __name__ == "__main__":
    main()
