"""The whole cluster as processes (the `swarmhub up` code path): 1,000 tasks, then a kill."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from swarmhub.capabilities import cpu_digest
from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from swarmhub.schemas import ResultStatus, Task
from tests.conftest import wait_for_agents, wait_until


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    events: list[str] = []
    local = LocalCluster(
        ClusterConfig(
            data_dir=tmp_path_factory.mktemp("cluster"),
            port=free_port(),
            workers=2,
            worker_concurrency=64,
        ),
        on_event=events.append,
    ).start()
    try:
        yield local
    finally:
        local.stop()
        assert not [p for p in local.pids().values() if psutil.pid_exists(p)]


def expected_output(task: Task) -> object:
    if task.capability == "echo":
        return task.payload
    if task.capability == "cpu":
        return {"rounds": task.payload["rounds"], "digest": cpu_digest(task.payload["rounds"])}
    if task.capability == "sleep":
        return {"slept_ms": float(task.payload["ms"])}
    return None


def mixed_tasks(n: int) -> list[Task]:
    tasks = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            tasks.append(Task(capability="echo", payload={"i": i, "text": f"hello {i}"}))
        elif kind == 1:
            tasks.append(Task(capability="cpu", payload={"rounds": 100 + i % 50}))
        elif kind == 2:
            tasks.append(Task(capability="sleep", payload={"ms": i % 20}))
        else:
            tasks.append(
                Task(capability="fail", payload={"message": f"planned {i}", "retryable": False})
            )
    return tasks


def cluster_rss_mb(local: LocalCluster) -> float:
    total = 0
    for pid in local.pids().values():
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


async def submit_all(client: SwarmClient, tasks: list[Task]) -> None:
    sem = asyncio.Semaphore(200)

    async def one(task: Task) -> None:
        async with sem:
            await client.submit(task)

    await asyncio.gather(*(one(t) for t in tasks))


async def test_thousand_tasks_each_get_exactly_one_right_result(cluster: LocalCluster) -> None:
    # Given a running cluster with two workers
    await wait_for_agents(cluster.url, 2)
    async with await SwarmClient.connect(cluster.url) as client:
        collector = await ResultCollector(client).start()
        tasks = mixed_tasks(1000)
        # When 1,000 tasks across the built-ins are submitted
        started = time.perf_counter()
        await submit_all(client, tasks)
        results = await collector.wait_all([t.id for t in tasks], timeout=180)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0)  # let any straggling duplicate event arrive before counting
        await collector.stop()
        # Then every task has exactly one result, with the right output
        missing = [t.id for t in tasks if t.id not in results]
        assert not missing, f"{len(missing)} tasks have no result"
        duplicates = {k: v for k, v in collector.events.items() if v > 1}
        assert not duplicates, f"tasks with more than one result event: {duplicates}"
        for task in tasks:
            result = results[task.id]
            stored = await client.result(task.id)
            assert stored == result
            if task.capability == "fail":
                assert result.status is ResultStatus.FAILED
                assert result.error is not None
                assert result.error.message == task.payload["message"]
            else:
                assert result.status is ResultStatus.SUCCEEDED, result.error
                assert result.output == expected_output(task)
        print(
            f"\n1000 mixed tasks end to end: {elapsed:.2f} s ({1000 / elapsed:.0f} tasks/s); "
            f"cluster RSS {cluster_rss_mb(cluster):.0f} MB"
        )


async def test_sigkill_of_a_worker_loses_none_of_500_sleep_tasks(cluster: LocalCluster) -> None:
    await wait_for_agents(cluster.url, 2)
    async with await SwarmClient.connect(cluster.url) as client:
        collector = await ResultCollector(client).start()
        tasks = [Task(capability="sleep", payload={"ms": 1500}) for _ in range(500)]
        victim = cluster.supervisor.child("agent-worker-1")
        assert victim.proc is not None
        victim_pid = victim.proc.pid

        async def victim_busy() -> bool:
            stats = await client.discover("STATS", "agent-worker", wait=0.2)
            return any(
                s.get("data", {}).get("in_flight", 0) >= 10
                and s.get("metadata", {}).get("agent_id")
                and psutil.Process(victim_pid).is_running()
                for s in stats
            )

        # Given 500 sleep tasks in flight
        started = time.perf_counter()
        await submit_all(client, tasks)
        await wait_until(victim_busy, 30, "the victim worker to be busy", interval=0.1)
        # When one worker is SIGKILLed mid-task
        os.kill(victim_pid, signal.SIGKILL)

        async def restarted() -> bool:
            return victim.proc is not None and victim.proc.pid != victim_pid

        await wait_until(restarted, 30, "the supervisor to restart the killed worker")
        assert victim.restarts == 1
        # Then all 500 still end with exactly one (successful) result each
        results = await collector.wait_all([t.id for t in tasks], timeout=240)
        elapsed = time.perf_counter() - started
        await collector.stop()
        missing = [t.id for t in tasks if t.id not in results]
        assert not missing, f"{len(missing)} of 500 tasks were lost"
        assert all(collector.events[t.id] == 1 for t in tasks)
        failed = [r for r in results.values() if r.status is not ResultStatus.SUCCEEDED]
        assert not failed, failed[:3]
        retried = sum(1 for r in results.values() if r.attempts > 1)
        print(f"\n500 sleep tasks with a worker SIGKILLed: {elapsed:.2f} s, {retried} retried")
