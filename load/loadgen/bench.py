"""`swarmhub bench`: the original AI Orchestrator Hub's four figures, measured honestly here."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loadgen.cluster import wait_ready
from loadgen.config import LoadConfig
from loadgen.connection import connect
from loadgen.constants import REPORT_VERSION
from loadgen.discovery import discover
from loadgen.histogram import LatencyHistogram
from loadgen.resources import PidSource, ResourceSampler
from loadgen.runner import execute
from loadgen.scenarios import ScenarioConfig
from loadgen.scenarios.agent import LOAD_CAPABILITY
from loadgen.scenarios.task import TaskScenario
from loadgen.thresholds import Thresholds
from swarmhub import subjects
from swarmhub.client import SwarmClient
from swarmhub.errors import ServiceError
from swarmhub.schemas import Ack, AgentRegistration, LeaveRequest, RegisterReply, SwarmJob

# The figures users of the original hub quote, with the iterations each was measured over.
ORIGINAL: dict[str, dict[str, Any]] = {
    "agent_operations": {"value": 854.70, "unit": "ops/s", "iterations": 100},
    "task_processing": {"value": 833.33, "unit": "ops/s", "iterations": 50},
    "memory": {"value": 0.0, "unit": "MB growth", "iterations": 1000},
    "swarm_coordination": {"value": 476.19, "unit": "ops/s", "iterations": 20},
}
WARMUP_OPS = 5
MEMORY_CONCURRENCY = 100


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of the suite's parts."""

    url: str
    agent_iterations: int = 100
    task_iterations: int = 50
    memory_tasks: int = 1000
    swarm_rounds: int = 20
    saturation_seconds: float = 5.0
    saturation_concurrency: int = 64
    capability: str = "echo"
    timeout: float = 30.0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("agent_iterations", "task_iterations", "memory_tasks", "swarm_rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.saturation_seconds <= 0 or self.saturation_concurrency < 1:
            raise ValueError("--saturation-seconds and --saturation-concurrency must be positive.")


async def timed(count: int, op: Callable[[int], Awaitable[None]]) -> tuple[LatencyHistogram, float]:
    """Run `op(0..count-1)` one after another; each call's latency and the total seconds."""
    hist = LatencyHistogram()
    began = time.perf_counter()
    for i in range(count):
        t = time.perf_counter()
        await op(i)
        hist.record(time.perf_counter() - t)
    return hist, time.perf_counter() - began


def _rate(count: int, elapsed: float, hist: LatencyHistogram, what: str) -> dict[str, Any]:
    return {
        "iterations": count,
        "elapsed_s": round(elapsed, 4),
        "ops_per_s": round(count / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": hist.summary(),
        "what": what,
    }


async def bench_agents(client: SwarmClient, cfg: BenchConfig, run_id: str) -> dict[str, Any]:
    """One register round trip per iteration, sequential; the agents leave afterwards."""
    ids: list[str] = []

    async def register(i: int) -> None:
        agent_id = f"load-{run_id}-b{i}"
        ids.append(agent_id)
        await client.bus.request(
            subjects.SWARM_REGISTER,
            AgentRegistration(
                agent_id=agent_id, capabilities=[LOAD_CAPABILITY], capacity=1, pid=os.getpid()
            ),
            RegisterReply,
            timeout=cfg.timeout,
        )

    try:
        for i in range(WARMUP_OPS):
            await register(-1 - i)
        hist, elapsed = await timed(cfg.agent_iterations, register)
    finally:
        for agent_id in ids:
            try:
                await client.bus.request(
                    subjects.SWARM_LEAVE, LeaveRequest(agent_id=agent_id), Ack, timeout=2.0
                )
            except ServiceError:
                pass
    return _rate(cfg.agent_iterations, elapsed, hist, "one register round trip to the coordinator")


def _task_scenario(client: SwarmClient, cfg: BenchConfig, run_id: str) -> TaskScenario:
    import random

    traffic = ScenarioConfig(capability=cfg.capability, timeout=cfg.timeout, run_id=run_id)
    return TaskScenario(client, traffic, random.Random(0))


async def bench_tasks(client: SwarmClient, cfg: BenchConfig, run_id: str) -> dict[str, Any]:
    """One submit -> result per iteration, end to end, sequential."""
    scenario = _task_scenario(client, cfg, run_id + "t")
    await scenario.setup()
    try:
        for i in range(WARMUP_OPS):
            await scenario.run("task", -1 - i)
        hist, elapsed = await timed(cfg.task_iterations, lambda i: scenario.run("task", i))
    finally:
        await scenario.teardown()
    return _rate(
        cfg.task_iterations, elapsed, hist, f"submit -> result of one {cfg.capability!r} task"
    )


async def bench_memory(
    client: SwarmClient, cfg: BenchConfig, run_id: str, pids: PidSource
) -> dict[str, Any]:
    """Services' total RSS before and after `memory_tasks` tasks (100 in flight)."""
    sampler = ResourceSampler(pids, interval=0.5)
    if not pids():
        return {"error": "no cluster processes to sample; pass --pids or use --cluster"}
    sampler.prime()
    before = sampler.sample()
    scenario = _task_scenario(client, cfg, run_id + "m")
    await scenario.setup()
    gate = asyncio.Semaphore(MEMORY_CONCURRENCY)
    failures: dict[str, int] = {}

    async def one(i: int) -> None:
        async with gate:
            try:
                await scenario.run("task", i)
            except ServiceError as exc:
                failures[exc.code.value] = failures.get(exc.code.value, 0) + 1

    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop, cfg.timeout * 4 + 60))
    began = time.perf_counter()
    try:
        await asyncio.gather(*(one(i) for i in range(cfg.memory_tasks)))
    finally:
        elapsed = time.perf_counter() - began
        stop.set()
        await sampling
        await scenario.teardown()
    after = sampler.sample()
    return {
        "tasks": cfg.memory_tasks,
        "elapsed_s": round(elapsed, 3),
        "errors_by_code": failures,
        "rss_mb_before": round(before.total_rss_mb, 2),
        "rss_mb_after": round(after.total_rss_mb, 2),
        "rss_mb_peak": round(max(s.total_rss_mb for s in sampler.samples), 2),
        "growth_mb": round(after.total_rss_mb - before.total_rss_mb, 2),
        "by_process_growth_mb": {
            name: round(after.rss_mb[name] - before.rss_mb[name], 2)
            for name in sorted(before.rss_mb)
            if name in after.rss_mb
        },
        "what": f"RSS of {len(before.rss_mb)} cluster processes before and after the tasks",
    }


async def bench_swarm(client: SwarmClient, cfg: BenchConfig) -> dict[str, Any]:
    """One fan-out/fan-in job across every live agent per round, sequential."""
    agents: list[int] = []
    statuses: dict[str, int] = {}

    async def round_trip(i: int) -> None:
        result = await client.run_job(
            SwarmJob(
                capability=cfg.capability,
                payload={"bench_round": i},
                fan_out=0,
                timeout=cfg.timeout,
            )
        )
        agents.append(len(result.agents))
        statuses[result.status] = statuses.get(result.status, 0) + 1

    for i in range(2):
        await round_trip(-1 - i)
    agents.clear()
    statuses.clear()
    hist, elapsed = await timed(cfg.swarm_rounds, round_trip)
    figures = _rate(cfg.swarm_rounds, elapsed, hist, "one fan-out/fan-in job across live agents")
    figures["agents_per_round"] = round(sum(agents) / len(agents), 2) if agents else 0.0
    figures["statuses"] = statuses
    return figures


async def bench_saturation(
    cfg: BenchConfig, client: SwarmClient, pids: PidSource
) -> dict[str, Any]:
    """Closed-loop task throughput with many in flight: the hub's saturation point."""
    load = LoadConfig(
        url=cfg.url,
        scenario="task",
        concurrency=cfg.saturation_concurrency,
        duration=cfg.saturation_seconds,
        warmup=1.0,
        progress=cfg.progress,
        traffic=ScenarioConfig(
            capability=cfg.capability, timeout=cfg.timeout, run_id=secrets.token_hex(4)
        ),
        thresholds=Thresholds(min_throughput=0.0),
    )
    report = await execute(load, client, pids)
    return {
        "concurrency": cfg.saturation_concurrency,
        "seconds": cfg.saturation_seconds,
        "throughput_per_s": report["throughput_per_s"],
        "latency_ms": report["latency_ms"],
        "errors_by_code": report["errors_by_code"],
        "cluster_cpu_pct_mean": report["resources"].get("total_cpu_pct_mean"),
        "loadgen_cpu_pct_mean": report["resources"].get("loadgen_cpu_pct_mean"),
    }


async def run_suite(
    cfg: BenchConfig, given: PidSource | None, wait_agents: int = 0
) -> dict[str, Any]:
    """Every part of the suite in order; a part that fails is reported, the rest still run."""

    run_id = secrets.token_hex(4)
    results: dict[str, Any] = {}
    async with await connect(cfg.url, "swarmhub-bench") as client:
        if wait_agents:
            await wait_ready(client, wait_agents)
        if given is None:
            found = await discover(client, cfg.url)
            print(f"[bench] sampling {', '.join(sorted(found)) or 'no processes'}", file=sys.stderr)
        pids: PidSource = given or (lambda: found)
        parts: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
            ("agent_operations", lambda: bench_agents(client, cfg, run_id)),
            ("task_processing", lambda: bench_tasks(client, cfg, run_id)),
            ("memory", lambda: bench_memory(client, cfg, run_id, pids)),
            ("swarm_coordination", lambda: bench_swarm(client, cfg)),
            ("saturation", lambda: bench_saturation(cfg, client, pids)),
        ]
        for name, part in parts:
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                results[name] = await part()
            except ServiceError as exc:
                results[name] = {"error": f"{exc.code.value}: {exc.message}"}
    return {
        "version": REPORT_VERSION,
        "tool": "swarmhub bench",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": cfg.url,
        "original": ORIGINAL,
        "results": results,
        "exit_code": 1 if any("error" in r for r in results.values()) else 0,
    }


def _ours(name: str, figures: dict[str, Any]) -> str:
    if "error" in figures:
        return "error"
    if name == "memory":
        return f"{figures['growth_mb']:+.1f} MB RSS"
    return f"{figures['ops_per_s']:.2f} ops/s"


def bench_table(result: dict[str, Any]) -> str:
    """Our figures next to the original's, then saturation, as plain text."""
    lines = [
        f"SwarmHub bench against {result['url']} (over the real broker; original figures are "
        "the AI Orchestrator Hub's)",
        "",
        f"  {'FIGURE':<26} {'ORIGINAL':>14} {'SWARMHUB':>16}  NOTES",
    ]
    for name, original in ORIGINAL.items():
        figures = result["results"].get(name, {"error": "not run"})
        label = f"{name.replace('_', ' ')} ({original['iterations']:,})"
        theirs = (
            f"{original['value']:.0f} {original['unit']}"
            if name == "memory"
            else f"{original['value']:.2f} {original['unit']}"
        )
        if "error" in figures:
            note = figures["error"]
        elif "latency_ms" in figures:
            lat = figures["latency_ms"]
            note = f"{figures['what']}; P50 {lat['p50']:.2f} P99 {lat['p99']:.2f} ms"
        else:
            note = (
                f"{figures['what']}: {figures['rss_mb_before']:.1f} -> "
                f"{figures['rss_mb_after']:.1f} MB (peak {figures['rss_mb_peak']:.1f})"
            )
        lines.append(f"  {label:<26} {theirs:>14} {_ours(name, figures):>16}  {note}")
    sat = result["results"].get("saturation", {"error": "not run"})
    if "error" in sat:
        lines.append(f"  {'saturation':<26} {'-':>14} {'error':>16}  {sat['error']}")
    else:
        lat = sat["latency_ms"]
        lines.append(
            f"  {'saturation (closed loop)':<26} {'-':>14} {sat['throughput_per_s']:>10.1f} "
            f"ops/s  {sat['concurrency']} in flight for {sat['seconds']:g} s; P50 "
            f"{lat['p50']:.1f} P95 {lat['p95']:.1f} P99 {lat['p99']:.1f} P99.9 "
            f"{lat['p99_9']:.1f} max {lat['max']:.1f} ms"
        )
    return "\n".join(lines)
