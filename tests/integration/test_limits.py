"""A near-limit task never takes a process off NATS: limits count headers, at the client and
at intake, against a real nats-server with its default max_payload (1 MiB)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import msgpack
import pytest
from nats.js.api import DiscardPolicy

from swarmhub import codec, subjects
from swarmhub.bus import HDR_MSG_ID
from swarmhub.client import SwarmClient
from swarmhub.config import StorageSettings
from swarmhub.embedded import LocalCluster
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import ResultStatus, Task
from tests.conftest import services_on, wait_for_agents


@pytest.fixture(scope="module")
def cluster(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with services_on(nats_url, tmp_path_factory.mktemp("limits"), workers=1) as cluster:
        yield cluster


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(cluster.url, 1)
    async with await SwarmClient.connect(cluster.url) as c:
        yield c


def _echo_body(task_id: str, size: int) -> bytes:
    """A valid echo task whose msgpack body is exactly `size` bytes."""
    body = msgpack.packb({"id": task_id, "capability": "echo", "payload": {"blob": ""}})
    pad = size - len(body) - 4  # the blob's str header grows from 1 to 5 bytes (str32)
    return msgpack.packb({"id": task_id, "capability": "echo", "payload": {"blob": "y" * pad}})


async def test_the_client_refuses_a_near_limit_task_and_stays_connected(
    client: SwarmClient,
) -> None:
    max_payload = client.bus.nc.max_payload
    # Given tasks a few dozen bytes under the server's limit, and just over the task limit
    near = Task(id="near-client", capability="echo", payload={"blob": "x" * (max_payload - 200)})
    over = Task(capability="echo", payload={"blob": "x" * (client.bus.limits.task + 10)})
    # When they are submitted, Then each is refused by name, before anything is sent
    for task, words in ((near, "above the limit"), (over, "above the task limit")):
        with pytest.raises(ServiceError) as info:
            await client.submit(task)
        assert info.value.code is ErrorCode.TOO_LARGE
        assert words in info.value.message
    # And the connection still works for the next task
    assert not client.bus.nc.is_closed
    ok = await client.run(Task(capability="echo", payload={"n": 1}), timeout=20, check=False)
    assert ok.status is ResultStatus.SUCCEEDED


async def test_a_near_limit_task_is_dead_lettered_and_routing_goes_on(
    cluster: LocalCluster, client: SwarmClient
) -> None:
    router_pid = cluster.supervisor.child("task-router-1").proc.pid  # type: ignore[union-attr]
    max_payload = client.bus.nc.max_payload
    # Given a valid echo task 110 bytes under max_payload, sent around the client's checks
    task_id = "near-limit-1"
    body = _echo_body(task_id, max_payload - 110)
    assert len(body) == max_payload - 110
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"), body, headers={HDR_MSG_ID: task_id}
    )
    # When the router takes it, Then it is dead-lettered at once with a reason naming the limit
    result = await client.wait(task_id, timeout=20, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED
    assert result.error is not None and "above the" in result.error.message
    # And the router kept its connection: the next normal task completes on the same process
    for i in range(3):
        ok = await client.run(
            Task(capability="echo", payload={"after": i}), timeout=20, check=False
        )
        assert ok.status is ResultStatus.SUCCEEDED
    assert cluster.supervisor.child("task-router-1").proc.pid == router_pid  # type: ignore[union-attr]
    pings = await client.discover("PING", "task-router", wait=0.3)
    assert len(pings) == 1


async def test_a_task_at_the_task_limit_runs_end_to_end(client: SwarmClient) -> None:
    # Given an echo task just under the task limit (dispatch, result and headers must all fit)
    limit = client.bus.limits.task
    task = Task(capability="echo", payload={"blob": "z" * (limit - 400)})
    assert limit - 400 < len(client.bus.encode(task)) <= limit
    # When it runs, Then it succeeds with its whole output, and the hub goes on serving
    result = await client.run(task, timeout=30, check=False)
    assert result.status is ResultStatus.SUCCEEDED
    assert result.output == task.payload
    ok = await client.run(Task(capability="echo", payload={"n": 2}), timeout=20, check=False)
    assert ok.status is ResultStatus.SUCCEEDED


async def _flood(client: SwarmClient, tasks: list[Task]) -> None:
    for start in range(0, len(tasks), 50):
        await asyncio.gather(*(client.submit(t) for t in tasks[start : start + 50]))


async def test_far_off_tasks_do_not_hold_router_slots(client: SwarmClient) -> None:
    # Given more tasks due in half an hour than the router has slots (256)
    later = time.time() + 1800
    await _flood(client, [Task(capability="echo", not_before=later) for _ in range(300)])
    # When a normal task is submitted, Then it still runs at once
    ok = await client.run(Task(capability="echo", payload={"n": 1}), timeout=5, check=False)
    assert ok.status is ResultStatus.SUCCEEDED


async def test_tasks_nobody_can_run_do_not_hold_router_slots(client: SwarmClient) -> None:
    # Given more tasks for a capability no agent offers than the router has slots
    await _flood(client, [Task(capability="nobody-offers-this") for _ in range(300)])
    # When a normal task is submitted, Then it still runs at once
    ok = await client.run(Task(capability="echo", payload={"n": 2}), timeout=5, check=False)
    assert ok.status is ResultStatus.SUCCEEDED


async def test_schedules_beyond_the_horizon_and_tasks_without_ids_are_refused(
    client: SwarmClient,
) -> None:
    # The client refuses a task due in ten years, naming the horizon
    decade = Task(capability="echo", not_before=time.time() + 10 * 365 * 86400)
    with pytest.raises(ServiceError, match="NOT_BEFORE_HORIZON"):
        await client.submit(decade)
    # Sent around the client, the router dead-letters it on its first delivery
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"),
        codec.encode(decade),
        headers={HDR_MSG_ID: decade.id},
    )
    result = await client.wait(decade.id, timeout=10, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED
    assert result.error is not None and "NOT_BEFORE_HORIZON" in result.error.message
    # A body without an id is refused as such (the header id is where its result goes)
    body = msgpack.packb({"capability": "echo", "payload": {}})
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"), body, headers={HDR_MSG_ID: "no-id-1"}
    )
    nameless = await client.wait("no-id-1", timeout=10, check=False)
    assert nameless.status is ResultStatus.DEAD_LETTERED
    assert nameless.error is not None and "has no 'id'" in nameless.error.message


async def test_a_task_naming_hundreds_of_unknown_fields_is_rejected_once(
    client: SwarmClient,
) -> None:
    # Given a task whose validation error alone is longer than an error may be on the wire
    fields = {f"unknown_field_number_{i}": i for i in range(150)}
    body = codec.pack({"id": "many-fields-1", "capability": "echo", **fields})
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"), body, headers={HDR_MSG_ID: "many-fields-1"}
    )
    # Then it still ends, dead-lettered with a cut reason, instead of being redelivered forever
    result = await client.wait("many-fields-1", timeout=20, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED and result.error is not None
    assert "unknown_field_number_0" in result.error.message
    assert len(result.error.message) <= 1100


async def test_streams_and_buckets_have_size_limits(client: SwarmClient) -> None:
    storage = StorageSettings()
    tasks = await client.bus.js.stream_info(subjects.TASK_STREAM)
    assert tasks.config.max_bytes == storage.tasks_max_bytes
    assert tasks.config.discard == DiscardPolicy.NEW  # full: refuse new, never drop a stored task
    dead = await client.bus.js.stream_info(subjects.DEAD_STREAM)
    assert dead.config.max_bytes == storage.dead_max_bytes
    assert dead.config.discard == DiscardPolicy.OLD
    results = await client.bus.js.stream_info(f"KV_{subjects.RESULTS_BUCKET}")
    assert results.config.max_bytes == storage.results_max_bytes
