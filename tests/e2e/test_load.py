"""The load generator against the embedded cluster: a short run, its report, and an alert."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from swarmhub.loadgen.__main__ import main
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
            sys.executable, "-m", "swarmhub.loadgen", "load", "--url", cluster.url,
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


def test_bench_baseline_smoke_reports_every_figure(tmp_path: Path) -> None:
    # Given no --url, `bench --baseline` starts its own raw pipeline and its own cluster; every
    # step is short, since this checks that the report is complete, not how fast anything is
    out = tmp_path / "baseline.json"
    code = main(
        [
            "bench", "--baseline", "--baseline-seconds", "1", "--baseline-warmup", "0.2",
            "--agent-iterations", "20", "--task-iterations", "10", "--swarm-rounds", "5",
            "--memory-tasks", "100", "--memory-warmup-tasks", "100",
            "--saturation-seconds", "1", "--json", str(out), "--quiet",
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, (report.get("baseline", {}).get("errors"), report["results"])
    # Then the original rows ran with their targets and a sequential pass beside them
    results = report["results"]
    for name in ("agent_operations", "task_processing", "swarm_coordination"):
        row = results[name]
        assert row["in_flight"] == row["iterations"]
        assert row["ops_per_s"] > 0 and row["sequential"]["ops_per_s"] > 0
        assert row["sequential"]["latency_ms"]["p50"] > 0
        assert isinstance(row["met"], bool) and "min" in row["target"]
    memory = results["memory"]
    assert (memory["tasks"], memory["warmup_tasks"]) == (100, 100)
    assert {"growth_mb", "nats_growth_mb", "total_growth_mb", "by_process_growth_mb"} <= set(memory)
    assert isinstance(memory["met"], bool)
    assert results["saturation"]["throughput_per_s"] > 0
    # And the baseline section holds both sides, every step, and numeric ratios
    baseline = report["baseline"]
    assert baseline["errors"] == {}
    names = ["closed-1", "closed-64", "closed-512", "open-1000"]
    assert [row["name"] for row in baseline["steps"]] == names
    assert set(baseline["ratio"]) == set(names)
    assert all(isinstance(v, float) for v in baseline["ratio"].values()), baseline["ratio"]
    for row in baseline["steps"]:
        assert all(isinstance(v, float) for v in row["ratio"].values()), row
        for side in ("raw", "swarmhub"):
            assert row[side]["errors"] == 0, (side, row)
    headline = baseline["headline"]
    assert isinstance(headline["p50_ratio_at_1"], float)
    assert isinstance(headline["open_p95_ratio"], float)
    assert headline["cpu_step"] == "closed-64"
    assert isinstance(headline["cpu_total_us_per_task"]["ratio"], float)
    raw, hub = baseline["raw"], baseline["swarmhub"]
    assert set(raw["processes"]) == {"nats-server", "consumer", "producer"}
    assert {"task-router-1", "agent-worker-1", "swarm-coordinator", "cache", "loadgen"} <= set(
        hub["processes"]
    )
    for side, generator in ((raw, "producer"), (hub, "loadgen")):
        cpu = side["cpu_us_per_task"]
        assert set(cpu["us_per_task"]) == set(side["processes"])
        assert all(isinstance(v, float) for v in cpu["us_per_task"].values())
        assert cpu["total_us_per_task"] > 0
        assert cpu["load_generators"] == [generator]
        rss = side["rss_mb"]
        assert set(rss["idle_mb"]) == set(rss["peak_mb"]) == set(side["processes"])
        assert rss["peak_total_mb"] > 0 and rss["idle_total_mb"] > 0
        for step in side["steps"].values():
            assert step["tasks_done"] >= step["ok"] > 0
    assert baseline["config"]["task_bytes"] > 0
