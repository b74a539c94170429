"""Real faults injected into real service processes: lost = 0 and duplicates = 0 in every row."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.schemas import Task
from tests.chaos.harness import Ledger, classify, kill, make_cluster, rng, submit_stream
from tests.conftest import wait_for_agents, wait_until


def sleep_tasks(n: int, ms: int) -> list[Task]:
    return [Task(capability="sleep", payload={"ms": ms}, max_attempts=10) for _ in range(n)]


async def run_scenario(
    cluster: LocalCluster, tasks: list[Task], rate: float, chaos: object, title: str
) -> None:
    async with await SwarmClient.connect(cluster.url) as client:
        collector = await ResultCollector(client).start()
        ledger = Ledger()
        submitting = asyncio.create_task(submit_stream(client, tasks, ledger, rate=rate))
        await chaos(client)  # type: ignore[operator]
        await submitting
        verdict = await classify(client, collector, ledger, timeout=120)
        await collector.stop()
    print("\n" + verdict.table(title))
    assert not ledger.refused, "no fault here should refuse a submission"
    assert verdict.rows["lost"] == 0, verdict.lost[:5]
    assert verdict.rows["completed twice"] == 0, verdict.duplicated[:5]
    assert verdict.rows["completed once"] == len(tasks)


async def worker_pid(cluster: LocalCluster, name: str) -> int:
    child = cluster.supervisor.child(name)
    assert child.proc is not None
    return child.proc.pid


async def test_worker_sigkill_mid_task_repeatedly(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=3, worker_concurrency=32).start()
    try:
        await wait_for_agents(cluster.url, 3)
        chooser = rng()

        async def chaos(client: SwarmClient) -> None:
            for _ in range(3):
                await asyncio.sleep(1.5)
                victim = f"agent-worker-{chooser.randint(1, 3)}"
                kill(await worker_pid(cluster, victim))
                # wait until the supervisor has restarted it and it registered again
                await wait_for_agents(cluster.url, 3, timeout=30)

        await run_scenario(
            cluster, sleep_tasks(600, 300), 100, chaos, "SIGKILL a worker mid-task x3"
        )
    finally:
        cluster.stop()


async def test_worker_sigstop_longer_than_ack_wait(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2, worker_concurrency=32).start()
    try:
        await wait_for_agents(cluster.url, 2)

        async def chaos(client: SwarmClient) -> None:
            await asyncio.sleep(1.0)
            pid = await worker_pid(cluster, "agent-worker-1")
            kill(pid, signal.SIGSTOP)
            await asyncio.sleep(6.0)  # longer than SWARMHUB_ACK_WAIT=4 and the expiry
            kill(pid, signal.SIGCONT)

        await run_scenario(
            cluster, sleep_tasks(300, 400), 60, chaos, "SIGSTOP a worker 6 s, then SIGCONT"
        )
    finally:
        cluster.stop()


async def test_router_sigkill_between_dispatch_and_ack(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2, routers=2, worker_concurrency=64).start()
    try:
        await wait_for_agents(cluster.url, 2)

        async def chaos(client: SwarmClient) -> None:
            for i in range(4):
                await asyncio.sleep(1.2)
                kill(await worker_pid(cluster, f"task-router-{i % 2 + 1}"))

        await run_scenario(
            cluster, sleep_tasks(600, 200), 100, chaos, "SIGKILL a router x4 (two routers)"
        )
    finally:
        cluster.stop()


async def test_coordinator_sigkill_standby_takes_over(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2, coordinators=2).start()
    try:
        await wait_for_agents(cluster.url, 2)

        async def leaders(client: SwarmClient) -> list[dict[str, object]]:
            stats = await client.discover("STATS", "swarm-coordinator", wait=0.3)
            return [s for s in stats if s.get("data", {}).get("leader")]

        async def chaos(client: SwarmClient) -> None:
            async def one_leader() -> bool:
                return len(await leaders(client)) == 1

            await wait_until(one_leader, 15, "exactly one coordinator leader")
            (old,) = await leaders(client)
            kill(int(old["metadata"]["pid"]))  # type: ignore[index]

            async def new_leader() -> bool:
                now = await leaders(client)
                return len(now) == 1 and now[0]["id"] != old["id"]

            await wait_until(new_leader, 15, "a standby to take the lease")

        await run_scenario(
            cluster, sleep_tasks(300, 100), 60, chaos, "SIGKILL the leader coordinator"
        )
    finally:
        cluster.stop()


async def test_long_task_outlives_ack_wait_without_redelivery(tmp_path: Path) -> None:
    # Given an ack wait of 2 s
    cluster = make_cluster(tmp_path, workers=2, extra_env={"SWARMHUB_ACK_WAIT": "2"}).start()
    try:
        await wait_for_agents(cluster.url, 2)
        async with await SwarmClient.connect(cluster.url) as client:
            # When a task runs for 5 s
            result = await client.run(
                Task(capability="sleep", payload={"ms": 5000}), timeout=30, check=False
            )
            # Then in-progress acks kept it ours: one attempt, run once in the whole swarm
            assert result.attempts == 1
            stats = await client.discover("STATS", "agent-worker", wait=0.3)
            assert sum(s["data"]["completed"] for s in stats) == 1
    finally:
        cluster.stop()


async def test_sigterm_drains_a_worker_without_rerunning_its_tasks(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2, worker_concurrency=16).start()
    try:
        await wait_for_agents(cluster.url, 2)
        async with await SwarmClient.connect(cluster.url) as client:
            collector = await ResultCollector(client).start()
            work = sleep_tasks(24, 1500)
            for task in work:
                await client.submit(task)
            victim = cluster.supervisor.child("agent-worker-1")
            assert victim.proc is not None

            async def busy() -> bool:
                stats = await client.discover("STATS", "agent-worker", wait=0.2)
                return any(
                    s["metadata"]["pid"] == str(victim.proc.pid) and s["data"]["in_flight"] > 0  # type: ignore[union-attr]
                    for s in stats
                )

            await wait_until(busy, 15, "the worker to have tasks in flight")
            # When it is asked to stop gracefully mid-task
            kill(victim.proc.pid, signal.SIGTERM)
            results = await collector.wait_all([t.id for t in work], timeout=60)
            await collector.stop()
        # Then it finishes what it holds: every task ran once, none was retried elsewhere
        assert len(results) == len(work)
        assert all(r.status.value == "succeeded" for r in results.values())
        assert all(r.attempts == 1 for r in results.values()), [
            r.attempts for r in results.values()
        ]
    finally:
        cluster.stop()
