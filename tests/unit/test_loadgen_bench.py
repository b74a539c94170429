"""The bench's rows: all iterations in flight together, targets, memory growth and the table."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from swarmhub.loadgen.bench import TARGETS, judge, memory_growth, ops_rate, together
from swarmhub.loadgen.benchtable import bench_table, target_text


async def test_together_has_every_iteration_in_flight_at_once() -> None:
    in_flight = 0
    most = 0
    release = asyncio.Event()

    async def op(i: int) -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if most == 100:
            release.set()
        await release.wait()
        in_flight -= 1

    hist, elapsed = await together(100, op)
    assert most == 100
    assert hist.count == 100
    assert elapsed > 0


async def test_together_raises_the_first_failure_after_all_finished() -> None:
    finished: list[int] = []

    async def op(i: int) -> None:
        await asyncio.sleep(0)
        finished.append(i)
        if i == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await together(10, op)
    assert sorted(finished) == list(range(10))


def test_ops_rate_is_iterations_over_elapsed() -> None:
    assert ops_rate(100, 0.1) == 1000.0
    assert ops_rate(50, 0.06) == 833.33
    assert ops_rate(10, 0.0) == 0.0


def test_targets_and_verdicts() -> None:
    assert judge("agent_operations", 854.70)["met"] is True
    assert judge("agent_operations", 854.69)["met"] is False
    assert judge("task_processing", 833.33)["met"] is True
    assert judge("swarm_coordination", 699.0)["met"] is False  # 700, not the original 476.19
    assert judge("memory", 1.0)["met"] is True
    assert judge("memory", 1.01)["met"] is False
    assert target_text(TARGETS["agent_operations"]) == ">= 854.70 ops/s"
    assert target_text(TARGETS["swarm_coordination"]) == ">= 700.00 ops/s"
    assert target_text(TARGETS["memory"]) == "<= 1 MB growth"


def test_memory_growth_keeps_nats_server_apart() -> None:
    before = {"nats-server:1": 30.0, "task-router:2": 50.0, "cache:3": 40.0, "gone:4": 9.0}
    after = {"nats-server:1": 34.5, "task-router:2": 50.25, "cache:3": 40.5}
    growth = memory_growth(before, after)
    assert growth["growth_mb"] == 0.75
    assert growth["nats_growth_mb"] == 4.5
    assert growth["total_growth_mb"] == 5.25
    assert growth["by_process_growth_mb"] == {
        "cache:3": 0.5,
        "nats-server:1": 4.5,
        "task-router:2": 0.25,
    }
    assert (growth["services_mb_before"], growth["services_mb_after"]) == (90.0, 90.75)


def row(name: str, ops: float, seq_ops: float) -> dict[str, Any]:
    lat = {"p50": 10.0, "max": 20.0}
    return {
        "iterations": 100,
        "elapsed_s": 0.1,
        "ops_per_s": ops,
        "latency_ms": lat,
        "sequential": {"ops_per_s": seq_ops, "latency_ms": {"p50": 0.9}},
        "what": f"{name} in flight together",
        **judge(name, ops),
    }


def test_the_table_prints_targets_and_verdicts_beside_the_figures() -> None:
    memory = {
        "growth_mb": 0.25,
        "nats_growth_mb": 3.0,
        "total_growth_mb": 3.25,
        "services_mb_before": 200.0,
        "services_mb_after": 200.25,
        "by_process_growth_mb": {"cache": 0.25, "nats-server": 3.0},
        "what": "services' RSS",
        **judge("memory", 0.25),
    }
    result = {
        "url": "nats://127.0.0.1:1",
        "results": {
            "agent_operations": row("agent_operations", 1500.0, 1000.0),
            "task_processing": row("task_processing", 500.0, 250.0),
            "memory": memory,
            "swarm_coordination": {"error": "timeout: no reply"},
            "saturation": {
                "concurrency": 64,
                "seconds": 5.0,
                "throughput_per_s": 1300.0,
                "latency_ms": {"p50": 1, "p95": 2, "p99": 3, "p99_9": 4, "max": 5},
            },
        },
    }
    lines = bench_table(result).splitlines()
    assert "TARGET" in lines[2] and "MET" in lines[2]
    agents = next(line for line in lines if line.strip().startswith("agent operations (100)"))
    assert ">= 854.70 ops/s" in agents and "1500.00 ops/s" in agents and " yes " in agents
    assert "sequential P50 0.90 ms" in agents
    tasks = next(line for line in lines if line.strip().startswith("task processing (50)"))
    assert ">= 833.33 ops/s" in tasks and " NO " in tasks
    mem = next(line for line in lines if line.strip().startswith("memory (1,000)"))
    assert "<= 1 MB growth" in mem and "+0.25 MB RSS" in mem and "nats-server +3.00 MB" in mem
    assert any("growth MB by process: cache +0.25, nats-server +3.00" in line for line in lines)
    swarm = next(line for line in lines if line.strip().startswith("swarm coordination (20)"))
    assert ">= 700.00 ops/s" in swarm and "timeout: no reply" in swarm
    assert any("1300.0 ops/s" in line for line in lines)
