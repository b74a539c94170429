"""Swarm jobs survive SIGKILL of the leader coordinator and of a worker, with one job result."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from nats.aio.msg import Msg

from swarmhub import codec, subjects
from swarmhub.client import SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.schemas import JobProgress, SwarmJob
from tests.chaos.harness import kill, make_cluster
from tests.conftest import REPO, wait_for_agents, wait_until

WORKERS = 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = make_cluster(
        tmp_path_factory.mktemp("jobs-chaos"),
        workers=WORKERS,
        worker_concurrency=4,
        coordinators=2,
        app="tests.apps.swarm",
        app_dir=REPO,
    ).start()
    try:
        yield local
    finally:
        local.stop()


async def _leader_pid(client: SwarmClient) -> int | None:
    for info in await client.discover("INFO", "swarm-coordinator", wait=0.3):
        meta = info.get("metadata", {})
        if meta.get("leader") == "true":
            return int(meta["pid"])
    return None


Events = list[tuple[float, JobProgress]]


async def _follow(client: SwarmClient, job_id: str, events: Events) -> None:
    async def on_event(msg: Msg) -> None:
        events.append((time.monotonic(), codec.decode(msg.data, JobProgress)))

    await client.bus.nc.subscribe(subjects.swarm_job_event(client.tenant, job_id), cb=on_event)


async def _done_some(client: SwarmClient, job_id: str, count: int) -> bool:
    status = await client.job_status(job_id)
    return status.progress.succeeded >= count


async def test_a_job_survives_sigkill_of_the_leader_coordinator(cluster: LocalCluster) -> None:
    await wait_for_agents(cluster.url, WORKERS, timeout=60)
    async with await SwarmClient.connect(cluster.url) as client:
        await wait_until(lambda: _has_leader(client), 30, "a leader coordinator")
        leader = await _leader_pid(client)
        assert leader is not None
        # Given a map of 240 sub-tasks of 150 ms on 12 slots (about 3 s of work)
        inputs = [{"ms": 150, "i": i} for i in range(240)]
        job = SwarmJob(capability="slow_echo", inputs=inputs)
        events: Events = []
        await _follow(client, job.id, events)
        await client.submit_job(job)
        await wait_until(lambda: _done_some(client, job.id, 20), 30, "20 sub-tasks done")
        # When the leader is killed mid-job
        killed_at = time.monotonic()
        kill(leader)
        result = await client.wait_job(job.id, timeout=90)
        finished_at = time.monotonic()
        # Then the job ends once, with every output, resumed by the next leader
        assert result.status == "succeeded", result.error
        assert result.value == inputs
        await wait_until(lambda: _true(any(e.state == "done" for _, e in events)), 10, "done")
        assert [e.state for _, e in events].count("done") == 1
        after = [t for t, e in events if t > killed_at]
        resumed = after[0] - killed_at if after else float("nan")
        new_leader = await _leader_pid(client)
        assert new_leader != leader
        print(
            f"coordinator SIGKILL mid-job: first progress from the new leader after "
            f"{resumed:.2f} s, job done {finished_at - killed_at:.2f} s after the kill "
            f"({result.total} sub-tasks)"
        )


async def test_a_job_survives_sigkill_of_a_worker(cluster: LocalCluster) -> None:
    await wait_for_agents(cluster.url, WORKERS, timeout=60)
    async with await SwarmClient.connect(cluster.url) as client:
        await wait_until(lambda: _has_leader(client), 30, "a leader coordinator")
        # Given a map of 120 sub-tasks of 200 ms, attempts that time out quickly
        inputs = [{"ms": 200, "i": i} for i in range(120)]
        job = SwarmJob(capability="slow_echo", inputs=inputs, attempt_timeout=2.0)
        events: Events = []
        await _follow(client, job.id, events)
        await client.submit_job(job)
        await wait_until(lambda: _done_some(client, job.id, 10), 30, "10 sub-tasks done")
        # When a worker running some of them is killed
        kill(cluster.pids()["agent-worker-1"])
        result = await client.wait_job(job.id, timeout=90)
        # Then every sub-task still ends with a result and the job has exactly one
        assert result.status == "succeeded", result.error
        assert result.value == inputs
        await wait_until(lambda: _true(any(e.state == "done" for _, e in events)), 10, "done")
        assert [e.state for _, e in events].count("done") == 1
        retried = sum(1 for o in result.outcomes if o.attempts > 1)
        print(f"worker SIGKILL mid-job: {retried} sub-tasks needed another attempt")


async def _has_leader(client: SwarmClient) -> bool:
    return await _leader_pid(client) is not None


async def _true(value: bool) -> bool:
    return value
