"""CPU per task and RSS idle/peak arithmetic, from fake snapshots (and this process for RSS)."""

from __future__ import annotations

import asyncio
import os

import pytest

from swarmhub.loadgen.footprint import CpuSnapshot, RssTracker, cpu_per_task, cpu_used, take_cpu
from swarmhub.loadgen.measure import measured_steps
from swarmhub.loadgen.steps import Step


def test_cpu_used_is_the_difference_per_process() -> None:
    before = CpuSnapshot(
        {"nats": 1.0, "router": 2.0, "gone": 5.0}, {"nats": 1, "router": 2, "gone": 3}
    )
    after = CpuSnapshot({"nats": 1.5, "router": 2.25}, {"nats": 1, "router": 2})
    assert cpu_used(before, after) == {"nats": 0.5, "router": 0.25}


def test_a_restarted_process_is_left_out() -> None:
    before = CpuSnapshot({"worker": 9.0}, {"worker": 10})
    after = CpuSnapshot({"worker": 0.2}, {"worker": 11})  # a new PID under the same name
    assert cpu_used(before, after) == {}


def test_cpu_per_task_in_microseconds_with_the_load_generator_apart() -> None:
    # 2,000 tasks; nats-server used 0.3 s, the consumer 0.5 s, the producer 0.4 s
    used = {"nats-server": 0.3, "consumer": 0.5, "producer": 0.4}
    cpu = cpu_per_task(used, 2000, generators={"producer"})
    assert cpu["us_per_task"] == {"consumer": 250.0, "nats-server": 150.0, "producer": 200.0}
    assert cpu["total_us_per_task"] == 400.0  # producer excluded
    assert cpu["load_generator_us_per_task"] == 200.0
    assert cpu["load_generators"] == ["producer"]
    assert cpu["cpu_s"]["consumer"] == 0.5
    assert cpu["tasks"] == 2000


def test_cpu_per_task_without_tasks_or_generators() -> None:
    cpu = cpu_per_task({"a": 1.0}, 0)
    assert cpu["us_per_task"] == {"a": None}
    assert cpu["total_us_per_task"] is None
    assert cpu["load_generator_us_per_task"] is None


def test_take_cpu_reads_this_process_and_skips_missing_pids() -> None:
    snap = take_cpu({"me": os.getpid(), "nobody": 2**22 + 12345})
    assert set(snap.seconds) == {"me"}
    assert snap.seconds["me"] > 0
    assert snap.pids == {"me": os.getpid()}


def test_rss_tracker_keeps_idle_and_peaks() -> None:
    tracker = RssTracker(lambda: {"me": os.getpid(), "gen": os.getpid()}, generators={"gen"})
    tracker.mark_idle()
    tracker.sample()
    summary = tracker.summary()
    assert set(summary["idle_mb"]) == {"me", "gen"}
    assert summary["peak_mb"]["me"] >= 1.0
    assert summary["idle_total_mb"] == summary["idle_mb"]["me"]  # the generator is left out
    assert summary["peak_total_mb"] == pytest.approx(summary["peak_mb"]["me"], abs=0.01)
    assert summary["load_generators"] == ["gen"]
    assert summary["samples"] == 1


async def test_measured_steps_reports_every_step_with_cpu_and_rss() -> None:
    steps = [Step(concurrency=1, seconds=1, warmup=0), Step(concurrency=64, seconds=1, warmup=0)]

    async def fake(step: Step, index: int) -> dict[str, object]:
        await asyncio.sleep(0)
        return {
            "throughput_per_s": 10.0 * (index + 1),
            "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0},
            "errors": 0,
            "tasks_done": 100,
        }

    side = await measured_steps(
        "fake", steps, lambda: {"me": os.getpid()}, (), fake, progress=False
    )
    assert list(side["steps"]) == ["closed-1", "closed-64"]
    assert side["cpu_step"] == "closed-64"
    assert side["cpu_us_per_task"]["tasks"] == 100
    assert set(side["cpu_us_per_task"]["us_per_task"]) == {"me"}
    assert side["rss_mb"]["peak_mb"]["me"] > 0
    assert side["processes"] == {"me": os.getpid()}
