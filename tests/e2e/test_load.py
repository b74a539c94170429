"""The load generator against the embedded cluster: a short run, its report, and an alert."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.__main__ import main
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from tests.conftest import REPO, wait_for_agents

RELAXED = [
    "--min-throughput", "10",
    "--max-p95-ms", "10000",
    "--max-error-rate", "5",
    "--max-load-avg", "1000",
]  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    events: list[str] = []
    local = LocalCluster(
        ClusterConfig(data_dir=tmp_path_factory.mktemp("cluster"), port=free_port(), workers=2),
        on_event=events.append,
    ).start()
    try:
        asyncio.run(wait_for_agents(local.url, 2))
        yield local
    finally:
        local.stop()


def pid_list(cluster: LocalCluster) -> str:
    return ",".join(f"{name}={pid}" for name, pid in cluster.pids().items())


def test_short_task_load_reports_every_figure(cluster: LocalCluster, tmp_path: Path) -> None:
    # Given the running cluster, when 100 tasks/s are offered for 3 s after a 1 s warm-up
    out = tmp_path / "load.json"
    code = main(
        [
            "load", "--url", cluster.url, "--scenario", "task",
            "--rate", "100", "--duration", "3", "--warmup", "1",
            "--pids", pid_list(cluster), "--json", str(out), "--report", str(tmp_path / "rep"),
            "--quiet", *RELAXED,
        ]
    )  # fmt: skip
    # Then every threshold held and the report holds the figures
    report = json.loads(out.read_text())
    assert code == 0, report["alerts"]
    assert report["alerts"] == []
    assert (report["scenario"], report["mode"]) == ("task", "open")
    requests = report["requests"]
    assert requests["warmup"] == 100
    assert requests["measured"] == 300
    assert requests["ok"] + requests["errors"] == 300
    assert report["errors_by_code"] == {}
    assert 60 < report["throughput_per_s"] < 130
    latency = report["latency_ms"]
    assert latency["count"] == requests["ok"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p95"] <= latency["p99"]
    assert latency["p99"] <= latency["p99_9"] <= latency["max"]
    assert {"late_starts", "start_lag_ms", "timeseries", "operations", "thresholds"} <= set(report)
    assert len(report["timeseries"]) >= 3
    assert sum(row["ok"] for row in report["timeseries"]) == requests["ok"]
    resources = report["resources"]
    assert set(resources["processes"]) == set(cluster.pids())
    assert resources["total_rss_mb_max"] > 10
    assert resources["samples"] >= 2
    assert {v["name"] for v in report["thresholds"]} == {
        "throughput", "p95_latency", "error_rate", "memory_growth", "load_average",
    }  # fmt: skip
    # And --report wrote the Markdown and the plot
    assert "# SwarmHub load report" in (tmp_path / "rep" / "load-report.md").read_text()
    assert (tmp_path / "rep" / "load-report.png").read_bytes()[:4] == b"\x89PNG"


def test_mixed_load_covers_every_operation(cluster: LocalCluster, tmp_path: Path) -> None:
    out = tmp_path / "mixed.json"
    code = main(
        [
            "load", "--url", cluster.url, "--scenario", "mixed",
            "--mix", "task=3,cache=3,agent=1,swarm=1", "--seed", "1",
            "--rate", "80", "--duration", "2", "--warmup", "0.5",
            "--pids", pid_list(cluster), "--json", str(out), "--quiet", *RELAXED,
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, report["alerts"]
    assert set(report["operations"]) == {"task", "cache-get", "cache-set", "agent", "swarm"}
    assert all(op["errors"] == 0 for op in report["operations"].values()), report["error_samples"]
    assert report["scenario_figures"]["swarm"]["agents_per_job"] >= 2


def test_an_impossible_p95_fires_its_alert_and_exits_non_zero(cluster: LocalCluster) -> None:
    # When P95 must stay under 1 µs
    proc = subprocess.run(
        [
            sys.executable, "-m", "loadgen", "load", "--url", cluster.url,
            "--rate", "50", "--duration", "1.5", "--warmup", "0",
            "--pids", pid_list(cluster), "--max-p95-ms", "0.001",
            "--min-throughput", "10", "--max-error-rate", "5", "--max-load-avg", "1000",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )  # fmt: skip
    # Then the run says so in an ALERT line and exits with 3
    assert proc.returncode == 3, proc.stderr
    alerts = [ln for ln in proc.stdout.splitlines() if ln.startswith("ALERT")]
    assert len(alerts) == 1 and alerts[0].startswith("ALERT p95_latency:"), proc.stdout
    assert "THRESHOLD" in proc.stdout
    assert "ok/s" in proc.stderr  # the once-a-second progress line
