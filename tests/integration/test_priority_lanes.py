"""Priority lanes on real processes: a backlog of low tasks is overtaken by more urgent ones.

Given a worker kept busy by thousands of low tasks, critical, high and normal tasks submitted
after them wait less, in that order, and every low task still completes. A hub that existed
before lanes (one consumer for every submit subject) is taken over without losing a task.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from swarmhub import subjects
from swarmhub.bus import HDR_MSG_ID
from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.codec import encode
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from swarmhub.schemas import Priority, ResultStatus, Task
from tests.conftest import (
    hub_taking_over,
    lane_consumer_filters,
    old_hub,
    wait_for_agents,
)

LOW_BACKLOG = 2_000
PER_LANE = 40
TASK_MS = 20.0
WORKER_SLOTS = 4  # 200 tasks/s: the low backlog alone takes about 10 s


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Its own server, with users: the router's least-privilege role binds every lane."""
    cluster = LocalCluster(
        ClusterConfig(
            data_dir=tmp_path_factory.mktemp("lanes"),
            port=free_port(),
            workers=1,
            worker_concurrency=WORKER_SLOTS,
            extra_env={"SWARMHUB_RETRY_BACKOFF": "0.01"},
        ),
        on_event=lambda text: None,
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def client(services: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(services.url, 1)
    async with await SwarmClient.connect(services.url) as c:
        yield c


def sleeper(priority: Priority) -> Task:
    return Task(capability="sleep", payload={"ms": TASK_MS}, priority=priority)


async def test_a_low_backlog_is_overtaken_by_priority_and_still_drains(
    client: SwarmClient,
) -> None:
    collector = await ResultCollector(client).start()
    try:
        # Given thousands of low tasks queued behind one busy worker
        lows = [sleeper(Priority.LOW) for _ in range(LOW_BACKLOG)]
        await client.submit_many(lows)
        # When critical, high and normal tasks are submitted after them, interleaved
        urgent = [
            sleeper(priority)
            for _ in range(PER_LANE)
            for priority in (Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)
        ]
        await client.submit_many(urgent, in_flight=16)
        found = await collector.wait_all([t.id for t in lows + urgent], timeout=50)
    finally:
        await collector.stop()

    # Then every task, the lows included, succeeded (no lane is starved)
    assert len(found) == len(lows) + len(urgent)
    assert {r.status for r in found.values()} == {ResultStatus.SUCCEEDED}
    waited: dict[Priority, list[float]] = {p: [] for p in Priority}
    for task in lows + urgent:
        waited[task.priority].append(found[task.id].timings.queued_ms)
    median = {p: statistics.median(ms) for p, ms in waited.items()}
    print("median queued ms:", {p.value: round(ms) for p, ms in median.items()})
    # And each lane waited clearly less than the next less urgent one
    assert median[Priority.CRITICAL] * 1.2 < median[Priority.HIGH]
    assert median[Priority.HIGH] * 1.2 < median[Priority.NORMAL]
    assert median[Priority.NORMAL] * 3 < median[Priority.LOW]


async def test_a_retry_stays_in_its_lane(client: SwarmClient) -> None:
    # When a high task fails (retryably) and is tried again until its attempts run out
    task = Task(capability="fail", payload={}, priority=Priority.HIGH, max_attempts=2)
    result = await client.run(task, timeout=30, check=False)
    assert result.status is ResultStatus.FAILED and result.attempts == 2
    # Then its dead letter shows the retry came on the high lane's subject
    letters = [letter for _, letter in await client.dead_letters() if letter.task_id == task.id]
    assert [letter.subject for letter in letters] == [
        subjects.task_submit(client.tenant, "fail", "high")
    ]
    assert letters[0].capability == "fail"


async def test_a_hub_from_before_lanes_is_taken_over_without_losing_a_task(
    tmp_path: Path,
) -> None:
    # Given a server holding the task stream and the one consumer of before lanes, with tasks
    # stored in it, some of them already delivered and not acknowledged
    old_consumer = {subjects.ROUTER_CONSUMER: subjects.TASK_SUBMIT_ALL}
    async with old_hub(tmp_path, old_consumer, ack_wait=2.0) as (server, js):
        old = [Task(capability="echo", payload={"n": i}) for i in range(20)]
        for task in old:
            # The subject of before tenants (and lanes): hub.task.submit.<capability>
            await js.publish(
                subjects.lane_filters("normal")[1].replace("*", task.capability),
                encode(task),
                headers={HDR_MSG_ID: task.id},
            )
        pull = await js.pull_subscribe_bind(subjects.ROUTER_CONSUMER, subjects.TASK_STREAM)
        assert len(await pull.fetch(5, timeout=2)) == 5  # an old router died holding these

        # When the hub of today starts on it
        async with hub_taking_over(server.url, tmp_path / "hub") as client:
            # Then every old task gets its result, and new tasks run in every lane
            new = [Task(capability="echo", payload={}, priority=p) for p in Priority]
            collector = await ResultCollector(client).start()
            try:
                await client.submit_many(new)
                ids = [t.id for t in old + new]
                found = await collector.wait_all(ids, timeout=30)
            finally:
                await collector.stop()
            assert {r.status for r in found.values()} == {ResultStatus.SUCCEEDED}
            assert len(found) == len(ids)
        # And the old consumer now takes the normal lane only, beside the other lanes'
        assert await lane_consumer_filters(js) == {
            subjects.lane_consumer(lane): subjects.lane_filters(lane) for lane in subjects.LANES
        }
