"""NATS itself fails: the single server restarts; a 3-node JetStream cluster loses nodes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.embedded import LocalCluster, NatsServer
from swarmhub.schemas import Task
from tests.chaos.harness import Classification, Ledger, classify, make_cluster, submit_stream
from tests.conftest import wait_for_agents


def tasks(n: int, ms: int = 50) -> list[Task]:
    return [Task(capability="sleep", payload={"ms": ms}, max_attempts=10) for _ in range(n)]


async def under_load(
    cluster: LocalCluster, work: list[Task], rate: float, chaos: object, title: str
) -> tuple[Ledger, Classification]:
    async with await SwarmClient.connect(cluster.url, reconnect=True) as client:
        collector = await ResultCollector(client).start()
        ledger = Ledger()
        submitting = asyncio.create_task(submit_stream(client, work, ledger, rate=rate))
        await chaos()  # type: ignore[operator]
        await submitting
        verdict = await classify(client, collector, ledger, timeout=180)
        await collector.stop()
    print("\n" + verdict.table(title))
    print(f"  longest gap between acknowledged submissions: {ledger.longest_gap():.2f} s")
    assert verdict.rows["lost"] == 0, verdict.lost[:5]
    assert verdict.rows["completed twice"] == 0, verdict.duplicated[:5]
    return ledger, verdict


async def stream_leader(url: str, stream: str = "HUB_TASKS") -> str:
    async with await SwarmClient.connect(url) as client:
        info = await client.bus.js.stream_info(stream)
        assert info.cluster is not None and info.cluster.leader
        return info.cluster.leader


def node(cluster: LocalCluster, name: str) -> NatsServer:
    return next(n for n in cluster.nodes if n.name == name)


async def test_single_server_restart_under_load(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2).start()
    try:
        await wait_for_agents(cluster.url, 2)

        async def chaos() -> None:
            await asyncio.sleep(2.0)
            cluster.nats.kill()
            await asyncio.sleep(2.0)
            await asyncio.to_thread(cluster.nats.start)

        ledger, verdict = await under_load(
            cluster, tasks(500), 50, chaos, "restart the single nats-server (SIGKILL, file storage)"
        )
        # Submissions during the outage failed loudly to the caller...
        assert ledger.refused, "the outage should have refused some submissions"
        # ...and every acknowledged one completed after the services reconnected by themselves.
        assert verdict.rows["completed once"] == len(ledger.accepted)
    finally:
        cluster.stop()


async def test_three_node_cluster_survives_the_stream_leader_dying(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2, nats_nodes=3).start()
    try:
        await wait_for_agents(cluster.url, 2)
        leader = await stream_leader(cluster.url)
        down: dict[str, float] = {}

        async def chaos() -> None:
            await asyncio.sleep(2.0)
            down["start"] = time.monotonic()
            node(cluster, leader).kill()
            await asyncio.sleep(14.0)  # longer than a raft election (4-9 s in nats-server)
            down["end"] = time.monotonic()
            await asyncio.to_thread(node(cluster, leader).start)

        ledger, verdict = await under_load(
            cluster, tasks(800), 40, chaos, f"3 nodes: SIGKILL the stream leader ({leader})"
        )
        assert verdict.rows["completed once"] == len(ledger.accepted)
        # Failover: submissions were acknowledged again while the old leader was still dead.
        during = [t for t in ledger.submit_times if down["start"] < t < down["end"]]
        assert during, "no submission was acknowledged while the old leader was down"
        assert ledger.longest_gap() < 12.0
    finally:
        cluster.stop()


async def test_three_node_cluster_without_quorum_refuses_then_drains(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, workers=2, nats_nodes=3).start()
    try:
        await wait_for_agents(cluster.url, 2)
        survivor = cluster.nodes[0]
        victims = cluster.nodes[1:]
        outage: dict[str, float] = {}

        async def chaos() -> None:
            await asyncio.sleep(2.0)
            outage["start"] = time.monotonic()
            for victim in victims:
                victim.kill()
            await asyncio.sleep(6.0)
            outage["end"] = time.monotonic()
            for victim in victims:
                await asyncio.to_thread(victim.start)

        ledger, verdict = await under_load(
            cluster, tasks(600), 50, chaos, f"3 nodes: SIGKILL 2 of 3, only {survivor.name} left"
        )
        # No false acknowledgement: without a quorum nothing is acknowledged...
        during = [t for t in ledger.submit_times if outage["start"] + 1.0 < t < outage["end"] - 0.5]
        assert not during, f"{len(during)} submissions acknowledged without a quorum"
        assert ledger.refused
        # ...and everything that was acknowledged drains once the nodes return.
        assert verdict.rows["completed once"] == len(ledger.accepted)
    finally:
        cluster.stop()
