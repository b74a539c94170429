"""One capability of long tasks cannot take every agent slot: real services, real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from swarmhub.client import SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.schemas import ResultStatus, Task
from tests.conftest import services_on, wait_for_agents, wait_until

SLOTS = 4
SHARE = 0.75
LONG_MS = 60_000


@pytest.fixture(scope="module")
def services(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with services_on(
        nats_url,
        tmp_path_factory.mktemp("fairness"),
        workers=1,
        worker_concurrency=SLOTS,
        extra_env={"SWARMHUB_CAPABILITY_SHARE": str(SHARE)},
    ) as cluster:
        yield cluster


@pytest.fixture
async def client(services: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(services.url, 1)
    async with await SwarmClient.connect(services.url) as c:
        yield c


async def test_a_short_task_runs_while_long_tasks_fill_the_slots_they_may(
    client: SwarmClient,
) -> None:
    # Given more minute-long sleeps than the one agent has slots
    sleeps = [Task(capability="sleep", payload={"ms": LONG_MS}) for _ in range(SLOTS + 2)]
    for task in sleeps:
        await client.submit(task)
    try:
        # When they have taken what they may (SWARMHUB_CAPABILITY_SHARE: 0.75 of 4 slots = 3)
        async def sleeps_running() -> bool:
            stats = await client.discover("STATS", "agent-worker", wait=0.3)
            return any(e.get("data", {}).get("in_flight") == int(SLOTS * SHARE) for e in stats)

        await wait_until(sleeps_running, 30, "the sleeps to take their share of the slots")
        # Then a short task still runs at once, on the slot left, long before any sleep ends
        echo = await client.run(Task(capability="echo", payload={"n": 1}), timeout=30)
        assert echo.status is ResultStatus.SUCCEEDED and echo.output == {"n": 1}
        assert all([await client.result(t.id) is None for t in sleeps])
    finally:
        await asyncio.gather(*(client.cancel(t.id) for t in sleeps))
