"""Circuit breakers against real stalls: a paused cache, a paused agent."""

from __future__ import annotations

import signal
import statistics
from pathlib import Path
from typing import Any

from swarmhub.client import SwarmClient
from swarmhub.schemas import ResultStatus, Task
from tests.chaos.harness import kill, make_cluster
from tests.conftest import wait_for_agents, wait_until


async def breaker_states(client: SwarmClient, service: str) -> dict[str, str]:
    stats = await client.discover("STATS", service, wait=0.3)
    return {
        name: snap["state"]
        for s in stats
        for name, snap in s.get("data", {}).get("breakers", {}).items()
    }


async def run_cpu(client: SwarmClient, n: int, seed: str) -> list[Any]:
    results = []
    for i in range(n):
        task = Task(capability="cpu", payload={"rounds": 50, "seed": f"{seed}-{i}"})
        results.append(await client.run(task, timeout=30, check=False))
    return results


async def test_paused_cache_is_bypassed_then_used_again(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path, workers=1, extra_env={"SWARMHUB_CACHE_BREAKER_WAIT": "1.0"}
    ).start()
    try:
        await wait_for_agents(cluster.url, 1)
        async with await SwarmClient.connect(cluster.url) as client:
            # Given a healthy cache: a repeated deterministic task is served from it
            first = await client.run(
                Task(capability="cpu", payload={"rounds": 10}), timeout=30, check=False
            )
            again = await client.run(
                Task(capability="cpu", payload={"rounds": 10}), timeout=30, check=False
            )
            assert not first.cached and again.cached
            healthy = await run_cpu(client, 20, "healthy")
            cache = cluster.supervisor.child("cache")
            assert cache.proc is not None
            # When the cache is paused
            kill(cache.proc.pid, signal.SIGSTOP)
            try:
                tripping = await run_cpu(client, 8, "tripping")
                states = await breaker_states(client, "agent-worker")
                assert list(states.values()) == ["OPEN"], states
                bypassed = await run_cpu(client, 20, "bypassed")
            finally:
                kill(cache.proc.pid, signal.SIGCONT)
            # Then tasks still ran, uncached, without waiting for the cache timeout
            assert all(r.status is ResultStatus.SUCCEEDED for r in tripping + bypassed)
            assert not any(r.cached for r in bypassed)
            base = statistics.median(r.timings.run_ms for r in healthy)
            open_ = statistics.median(r.timings.run_ms for r in bypassed)
            slow = statistics.median(r.timings.run_ms for r in tripping[:4])
            print(
                f"\nrun_ms median: healthy {base:.2f}, while tripping {slow:.1f}, "
                f"breaker open {open_:.2f} (overhead {open_ - base:+.2f} ms)"
            )
            assert open_ < 250 / 4, "an open breaker must not wait for the cache timeout"

            # And after SIGCONT the breaker closes again (trial calls in HALF_OPEN succeed)
            async def closed() -> bool:
                await run_cpu(client, 2, "healing")
                return list((await breaker_states(client, "agent-worker")).values()) == ["CLOSED"]

            await wait_until(closed, 20, "the cache breaker to close", interval=0.3)
    finally:
        cluster.stop()


async def test_stalled_agent_is_skipped_then_given_trial_tasks(tmp_path: Path) -> None:
    cluster = make_cluster(
        tmp_path,
        workers=2,
        extra_env={
            "SWARMHUB_EXPIRE_AFTER": "120",  # keep the stalled agent registered: only the breaker
            "SWARMHUB_BREAKER_WAIT": "1.5",
            "SWARMHUB_BREAKER_MIN_CALLS": "3",
        },
    ).start()
    try:
        await wait_for_agents(cluster.url, 2)
        async with await SwarmClient.connect(cluster.url) as client:
            victim = cluster.supervisor.child("agent-worker-1")
            assert victim.proc is not None
            stats = await client.discover("STATS", "agent-worker", wait=0.3)
            victim_id = next(
                s["data"]["agent_id"] for s in stats if s["metadata"]["pid"] == str(victim.proc.pid)
            )
            kill(victim.proc.pid, signal.SIGSTOP)
            try:
                # Tasks that land on the stalled agent time out and retry on the healthy one
                work = [
                    Task(capability="echo", payload={"i": i}, attempt_timeout=0.5, max_attempts=5)
                    for i in range(12)
                ]
                results = [await client.run(t, timeout=60, check=False) for t in work]
                assert all(r.status is ResultStatus.SUCCEEDED for r in results)
                assert all(r.agent_id != victim_id for r in results)
                states = await breaker_states(client, "task-router")
                assert states.get(victim_id) == "OPEN", states
                # While open, new tasks go straight to the healthy agent: no retries needed
                quick = [
                    await client.run(Task(capability="echo"), timeout=30, check=False)
                    for _ in range(5)
                ]
                assert all(r.attempts == 1 for r in quick)
            finally:
                kill(victim.proc.pid, signal.SIGCONT)

            # After the wait it gets trial tasks; they succeed and the breaker closes
            async def closed() -> bool:
                for _ in range(4):
                    await client.run(Task(capability="echo"), timeout=30, check=False)
                return (await breaker_states(client, "task-router")).get(victim_id) == "CLOSED"

            await wait_until(closed, 30, "the agent's breaker to close", interval=0.5)
    finally:
        cluster.stop()
