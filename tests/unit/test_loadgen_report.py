"""The report of a run: figures, thresholds, summary table, Markdown and PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path

from swarmhub.loadgen.config import LoadConfig
from swarmhub.loadgen.drivers import DriveStats
from swarmhub.loadgen.plot import write_plot
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.report import markdown, summary_table, write_json
from swarmhub.loadgen.resources import ResourceSampler
from swarmhub.loadgen.runner import assemble
from swarmhub.loadgen.thresholds import Thresholds


def synthetic_report(max_p95_ms: float = 200.0) -> dict[str, object]:
    recorder = Recorder(measure_start=0.0)
    for i in range(500):
        due = i / 100
        recorder.record("task", due, due, due + 0.002 + (i % 10) / 1000)
    recorder.record("task", 4.0, 4.0, 4.5, "timeout", "no result in time")
    sampler = ResourceSampler(lambda: {"me": os.getpid()}, start=0.0)
    sampler.prime()
    for _ in range(3):
        sampler.sample()
    cfg = LoadConfig(
        url="nats://127.0.0.1:1",
        rate=100.0,
        duration=5.0,
        warmup=0.0,
        thresholds=Thresholds(min_throughput=50, max_p95_ms=max_p95_ms),
    )
    stats = DriveStats(sent=501, max_in_flight=3)
    return assemble(cfg, "2026-01-01T00:00:00+00:00", 501, recorder, stats, sampler, {})


def test_report_holds_every_figure_and_judges_thresholds() -> None:
    report = synthetic_report()
    assert report["requests"]["ok"] == 500  # type: ignore[index]
    assert report["errors_by_code"] == {"timeout": 1}
    assert report["latency_ms"]["p95"] >= 10  # type: ignore[index]
    assert len(report["timeseries"]) == 6  # type: ignore[arg-type]  # the last ends at 5.001 s
    assert report["alerts"] == []
    assert report["exit_code"] == 0
    assert {t["name"] for t in report["thresholds"]} == {  # type: ignore[attr-defined]
        "throughput", "p95_latency", "error_rate", "memory_growth", "load_average",
    }  # fmt: skip


def test_impossible_threshold_turns_into_an_alert_and_exit_code() -> None:
    report = synthetic_report(max_p95_ms=0.001)
    assert report["exit_code"] == 3
    assert [a.split(":")[0] for a in report["alerts"]] == ["ALERT p95_latency"]  # type: ignore[attr-defined]


def test_table_markdown_json_and_plot(tmp_path: Path) -> None:
    report = synthetic_report()
    table = summary_table(report)
    assert "P95" in table and "THRESHOLD" in table and "timeout 1" in table
    text = markdown(report, "load-report.png")
    assert "| latency P99.9 |" in text and "![" in text
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["requests"]["ok"] == 500
    write_plot(report, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
