"""Isolated capabilities: each call in a child process that a timeout, a cancel or a drain kills.

The first tests run a real cluster whose worker process runs `tests.apps.isolated`; the last
ones host an AgentWorker in this process, so that only its own clean-up can stop its children.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from swarmhub import codec, subjects
from swarmhub.agent_worker.service import AgentWorker
from swarmhub.client import SwarmClient
from swarmhub.config import BusSettings, RuntimeSettings, WorkerSettings
from swarmhub.embedded import LocalCluster
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import CancelRequest, ResultStatus, RunRequest, Task
from tests.apps import isolated
from tests.conftest import REPO, services_on, wait_for_agents, wait_until

WORKER = "agent-worker-1"


@pytest.fixture(scope="module")
def cluster(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with services_on(
        nats_url,
        tmp_path_factory.mktemp("isolation"),
        workers=1,
        worker_concurrency=4,
        app="tests.apps.isolated",
        app_dir=REPO,
    ) as local:
        yield local


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(cluster.url, 1, timeout=60)
    async with await SwarmClient.connect(cluster.url) as c:
        yield c


def worker_pid(cluster: LocalCluster) -> int:
    """PID of the cluster's one worker process."""
    return cluster.pids()[WORKER]


async def wait_gone(*pids: int) -> None:
    """Wait until no process has any of `pids` (a zombie still counts as there)."""

    async def all_gone() -> bool:
        return not any(map(psutil.pid_exists, pids))

    await wait_until(all_gone, 10, f"processes {pids} to end")


def pids_written(folder: Path, pattern: str) -> list[int]:
    """The PIDs isolated functions wrote to files in `folder` matching `pattern`."""
    return [int(path.read_text()) for path in folder.glob(pattern)]


async def child_pid(folder: Path, pattern: str = "spin.pid") -> int:
    """The PID an isolated function wrote once it started."""

    async def written() -> bool:
        return bool(pids_written(folder, pattern))

    await wait_until(written, 30, f"an isolated function to write {pattern}")
    return pids_written(folder, pattern)[0]


async def still_serving(client: SwarmClient, cluster: LocalCluster, pid: int) -> None:
    """The same worker process answers a normal isolated task and a built-in one."""
    square = await client.run("square", {"n": 9}, timeout=30)
    assert square.output["square"] == 81
    assert (await client.run("echo", {"ok": 1}, timeout=30)).output == {"ok": 1}
    assert worker_pid(cluster) == pid


async def test_an_isolated_function_returns_its_result_from_a_child_of_its_own(
    cluster: LocalCluster, client: SwarmClient
) -> None:
    pid = worker_pid(cluster)
    # Given an isolated function with a typed payload
    # When two tasks run it
    first = await client.run("square", {"n": 12}, timeout=30)
    second = await client.run("square", {"n": 3}, timeout=30)
    # Then each got its output, computed in a process other than the worker, a new one each time
    assert first.output["square"] == 144 and second.output["square"] == 9
    children = {first.output["pid"], second.output["pid"]}
    assert len(children) == 2 and pid not in children
    await wait_gone(*children)
    # And a payload that does not fit the model fails for good, as it does without isolation
    bad = await client.run("square", {"n": "twelve"}, timeout=30, check=False)
    assert bad.status is ResultStatus.FAILED and bad.attempts == 1
    assert bad.error is not None and "does not fit Number: field 'n'" in bad.error.message


async def test_a_spinning_isolated_function_is_killed_at_its_timeout(
    cluster: LocalCluster, client: SwarmClient, tmp_path: Path
) -> None:
    pid = worker_pid(cluster)
    # Given an isolated function that burns CPU forever, started under a 2 s attempt timeout
    pid_file = tmp_path / "spin.pid"
    task = await client.submit("spin", {"pid_file": str(pid_file)}, attempt_timeout=2.0)
    spinner = await child_pid(tmp_path)
    # (a process of the worker's, forked by its forkserver, holding no socket: no NATS, no port)
    assert pid in {p.pid for p in psutil.Process(spinner).parents()}
    assert psutil.Process(spinner).net_connections(kind="all") == []
    # When its attempt times out
    result = await client.wait(task.id, timeout=30, check=False)
    assert result.status is ResultStatus.TIMED_OUT
    assert result.error is not None and "attempt timeout of 2 s" in result.error.message
    # Then its process is gone, so its CPU use stopped
    await wait_gone(spinner)
    # And the same worker process goes on serving
    await still_serving(client, cluster, pid)


@pytest.mark.parametrize(
    ("capability", "cause"),
    [
        ("exit_hard", "died with exit code 3"),
        ("segfault", "was killed by signal 11 (SIGSEGV)"),
    ],
)
async def test_a_crashing_isolated_function_fails_its_attempt_naming_the_cause(
    cluster: LocalCluster, client: SwarmClient, capability: str, cause: str
) -> None:
    pid = worker_pid(cluster)
    # Given an isolated function whose process dies under it
    # When a task runs it
    result = await client.run(capability, {}, timeout=30, check=False)
    # Then the attempt failed with a message naming the function and how its process ended
    assert result.status is ResultStatus.FAILED and result.attempts == 1
    assert result.error is not None and result.error.code is ErrorCode.HANDLER_ERROR
    assert f"tests.apps.isolated.{capability} {cause}" in result.error.message
    # And the worker process did not go down with it
    await still_serving(client, cluster, pid)


async def test_an_isolated_output_too_large_to_send_fails_as_too_large(
    cluster: LocalCluster, client: SwarmClient
) -> None:
    # Given an isolated function returning more than the server's max_payload
    size = client.bus.nc.max_payload + 1024
    # When a task runs it
    result = await client.run("huge", {"size": size}, timeout=30, check=False)
    # Then it fails with the usual too_large error, and the worker goes on
    assert result.status is ResultStatus.FAILED
    assert result.error is not None and result.error.code is ErrorCode.TOO_LARGE
    await still_serving(client, cluster, worker_pid(cluster))


# -- an AgentWorker hosted in this process -------------------------------------------------


def _agent(agent_id: str, **service: Any) -> AgentWorker:
    """An agent of the isolated app, hosted here (connected only once started)."""
    return AgentWorker(
        WorkerSettings(agent_id=agent_id, concurrency=4), registry=isolated.app.registry, **service
    )


def _attempt(capability: str, payload: dict[str, object], **fields: object) -> RunRequest:
    return RunRequest(task=Task(capability=capability, payload=payload, **fields), attempt=1)


async def test_a_cancelled_isolated_attempt_kills_its_child(tmp_path: Path) -> None:
    agent = _agent("iso-cancel")
    try:
        # Given a spinning isolated function running on an agent
        request = _attempt("spin", {"pid_file": str(tmp_path / "spin.pid")}, attempt_timeout=600)
        attempt = asyncio.create_task(agent.run_task(request))
        spinner = await child_pid(tmp_path)
        # When its task is cancelled
        await agent.cancel_task(CancelRequest(task_id=request.task.id))
        # Then the attempt ends as cancelled, and its child process is gone
        with pytest.raises(ServiceError) as info:
            await attempt
        assert info.value.code is ErrorCode.CANCELLED
        await wait_gone(spinner)
        assert agent.runners.processes.pids() == []
    finally:
        await agent.runners.close()


async def test_an_isolated_capability_runs_at_most_its_concurrency_of_children(
    tmp_path: Path,
) -> None:
    agent = _agent("iso-bound")
    release = tmp_path / "release"
    try:
        # Given three tasks of `hold` (concurrency 1) on an agent with room for four
        requests = [
            _attempt("hold", {"pid_file": str(tmp_path / f"{n}.pid"), "release": str(release)})
            for n in range(3)
        ]
        attempts = asyncio.gather(*(agent.run_task(r) for r in requests))
        await child_pid(tmp_path, "*.pid")
        # When the first holds, Then it is the only child, the others wait for their turn
        assert len(agent.runners.processes.pids()) == 1
        assert len(pids_written(tmp_path, "*.pid")) == 1
        # And once released, each ran in a child of its own, never two at once
        counts: list[int] = []

        async def count_children() -> bool:
            counts.append(len(agent.runners.processes.pids()))
            return attempts.done()

        release.touch()
        await wait_until(count_children, 30, "the three attempts to finish", interval=0.005)
        replies = await attempts
        assert max(counts) == 1
        assert len({r.output["pid"] for r in replies}) == 3
    finally:
        await agent.runners.close()


async def test_a_draining_worker_stops_its_children_by_pid(nats_url: str, tmp_path: Path) -> None:
    # Given an agent in this process, connected, whose drain waits at most 0.5 s
    agent = _agent(
        "iso-drain",
        bus_settings=BusSettings(nats_url=nats_url),
        runtime_settings=RuntimeSettings(drain_timeout=0.5),
    )
    await agent.start()
    dispatched: asyncio.Task[Any] | None = None
    try:
        # and a spinning isolated function running there, dispatched as a router does
        request = _attempt("spin", {"pid_file": str(tmp_path / "spin.pid")}, attempt_timeout=600)
        data = codec.pack(request.model_dump())
        run = agent.bus.nc.request(subjects.agent_run("iso-drain"), data, timeout=60)
        dispatched = asyncio.create_task(run)
        spinner = await child_pid(tmp_path)
        # When the agent shuts down gracefully
        await agent.shutdown()
        # Then its child was stopped by PID, and none is left, though this process lives on
        await wait_gone(spinner)
        assert agent.runners.processes.pids() == []
    finally:
        if not agent.stopped.is_set():
            await agent.shutdown()
        if dispatched is not None:
            dispatched.cancel()
            await asyncio.gather(dispatched, return_exceptions=True)
