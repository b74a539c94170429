"""A user's own agent end to end: `swarmhub up --app`, `swarmhub worker`, the CLI, the clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmhub import NoAgent, SwarmClient, TaskFailed, TaskTimeout
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port, stop_process
from swarmhub.schemas import ErrorCode, ResultStatus, Task, TaskProgress
from swarmhub.sync import connect
from tests.apps import sample
from tests.conftest import REPO, cluster_running, wait_for_agents, wait_until

APP = "tests.apps.sample"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A secured local cluster whose one worker runs the sample app (`swarmhub up --app`)."""
    config = ClusterConfig(
        data_dir=tmp_path_factory.mktemp("app-cluster"),
        port=free_port(),
        workers=1,
        worker_concurrency=4,
        agent_slots=1,
        app=APP,
        app_dir=REPO,
        extra_env={"SWARMHUB_NO_AGENT_WAIT": "2"},
    )
    with cluster_running(config) as local:
        yield local


@pytest.fixture(scope="module")
def env(cluster: LocalCluster) -> dict[str, str]:
    """The environment of a user in the cluster's project folder (credentials found there)."""
    return {**os.environ, "SWARMHUB_DATA_DIR": str(cluster.config.data_dir)}


def swarmhub(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the `swarmhub` command as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "swarmhub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_worker(cluster: LocalCluster, env: dict[str, str]) -> subprocess.Popen[str]:
    """`swarmhub worker` for the app, as a user starts it next to a local cluster."""
    logs = cluster.config.data_dir / "logs"
    log = (logs / f"swarmhub-worker-{len(list(logs.glob('swarmhub-worker-*')))}.log").open("w")
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "swarmhub", "worker", APP, "--app-dir", str(REPO)),
            *("--url", cluster.server_url, "--concurrency", "2"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def worker_logs(cluster: LocalCluster) -> str:
    """The last lines each `swarmhub worker` wrote, for failure messages."""
    logs = sorted((cluster.config.data_dir / "logs").glob("swarmhub-worker-*.log"))
    return "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in logs)


@pytest.fixture(scope="module")
def worker(cluster: LocalCluster, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A worker claiming the cluster's one agent slot."""
    proc = start_worker(cluster, env)
    try:
        asyncio.run(wait_for_agents(cluster.url, 2, timeout=60))
        yield proc
    finally:
        stop_process(proc, timeout=30)


async def test_both_workers_offer_the_apps_capabilities(
    cluster: LocalCluster, worker: subprocess.Popen[str]
) -> None:
    async with SwarmClient.connect(cluster.url) as client:
        agents = await client.agents()
    assert len(agents) == 2
    assert all(set(a.capabilities) == set(sample.app.names()) for a in agents)
    slot = next(u for u in cluster.credentials.users if u.role == "agent")  # type: ignore[union-attr]
    assert slot.agent_id in {a.agent_id for a in agents}, "swarmhub worker runs as its slot"


async def test_sync_and_typed_capabilities_answer(cluster: LocalCluster, worker: object) -> None:
    async with SwarmClient.connect(cluster.url) as client:
        upper = await client.run("upper", {"text": "hi"}, timeout=30)
        greet = await client.run("greet", {"name": "ada"}, timeout=30)
    assert upper.output["text"] == "HI" and upper.output["thread"].startswith("capability")
    assert greet.output == {"name": "hello ada", "excited": False}


async def test_failures_raise_typed_errors_carrying_the_result(
    cluster: LocalCluster, worker: object
) -> None:
    async with SwarmClient.connect(cluster.url) as client:
        with pytest.raises(TaskFailed, match="flaky failed on purpose") as flaky:
            await client.run("flaky", timeout=30)  # the task allows 3, the capability 1
        with pytest.raises(TaskFailed, match=r"0\.3 s") as slow:
            await client.run("slow", timeout=30, max_attempts=2)
        with pytest.raises(TaskFailed, match="does not fit Greeting") as typed:
            await client.run("greet", {"nom": "x"}, timeout=30)
        with pytest.raises(TaskFailed, match="msgpack cannot carry"):
            await client.run("odd", timeout=30)
        with pytest.raises(NoAgent, match=r"no_agent|No live agent|no agent"):
            await client.run("echo", timeout=30)  # nobody offers it; the router waits 2 s
        with pytest.raises(TaskTimeout, match="may still finish"):
            await client.run("blocking", {"seconds": 2}, timeout=0.2)
    assert flaky.value.result is not None and flaky.value.result.attempts == 1
    assert slow.value.result is not None and slow.value.result.status is ResultStatus.TIMED_OUT
    assert typed.value.result is not None and typed.value.result.attempts == 1


async def test_a_blocking_sync_capability_does_not_stall_the_worker(
    cluster: LocalCluster, worker: object
) -> None:
    async with SwarmClient.connect(cluster.url) as client:
        slow = [await client.submit("blocking", {"seconds": 3}) for _ in range(2)]
        quick = await client.run("upper", {"text": "still here"}, timeout=30)
        pending = [await client.result(t.id) for t in slow]
        assert quick.output["text"] == "STILL HERE"
        assert pending == [None, None], "the quick task finished while the blocking ones ran"
        for task in slow:
            assert (await client.wait(task.id, timeout=60)).output == {"slept": 3.0}


def test_the_sync_client_maps_many_payloads(cluster: LocalCluster, worker: object) -> None:
    seen: list[tuple[int, int]] = []
    with connect(cluster.url) as hub:
        results = hub.map(
            "upper",
            [{"text": f"n{i}"} for i in range(20)],
            progress=lambda d, t: seen.append((d, t)),
        )
        refused = hub.run("refuse", check=False)
    assert [r.output["text"] for r in results] == [f"N{i}" for i in range(20)]
    assert seen[-1] == (20, 20)
    assert refused.status is ResultStatus.FAILED and refused.attempts == 1


def test_the_cli_submits_to_the_app_and_warns_of_missing_agents(
    cluster: LocalCluster, env: dict[str, str], worker: object
) -> None:
    done = swarmhub(
        "submit",
        "upper",
        "--payload",
        '{"text": "cli"}',
        "--wait",
        "--json",
        "--url",
        cluster.server_url,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output"]["text"] == "CLI"
    assert f"{json.loads(done.stdout)['task_id']} running on agent-" in done.stderr
    status = swarmhub("status", "--json", "--url", cluster.server_url, env=env)
    figures = json.loads(status.stdout)
    assert figures["tasks"]["by_status"]["succeeded"] >= 1 and figures["leader"]
    assert figures["tasks"]["p95_ms"] is not None and figures["tasks"]["p95_window_s"] == 60
    failed = swarmhub("submit", "refuse", "--wait", "--url", cluster.server_url, env=env)
    assert failed.returncode == 1 and "refused: this input can never work" in failed.stdout
    nobody = swarmhub("submit", "echo", "--wait", "--url", cluster.server_url, env=env)
    assert "no live agent offers 'echo'" in nobody.stderr
    assert nobody.returncode == 1 and "no_agent" in nobody.stdout


async def test_a_cancelled_queued_task_never_runs(
    cluster: LocalCluster, worker: object, tmp_path: Path
) -> None:
    cancelled, kept = tmp_path / "cancelled", tmp_path / "kept"
    async with SwarmClient.connect(cluster.url) as client:
        soon = time.time() + 2
        doomed = await client.submit("touch", {"path": str(cancelled)}, not_before=soon)
        reply = await client.cancel(doomed.id)
        assert reply.state == "cancelled"
        assert reply.result.status is ResultStatus.CANCELLED
        # A task scheduled after it runs; once it has, the cancelled one would have too.
        await client.run("touch", {"path": str(kept)}, timeout=30, not_before=soon + 0.5)
        stored = await client.result(doomed.id)
        again = await client.cancel(doomed.id)
    assert kept.exists() and not cancelled.exists()
    assert stored is not None and stored.status is ResultStatus.CANCELLED
    assert again.state == "finished"


async def test_a_running_task_is_cancelled_on_its_agent(
    cluster: LocalCluster, worker: object
) -> None:
    running = asyncio.Event()
    steps: list[str] = []

    def on_progress(event: TaskProgress) -> None:
        steps.append(event.state)
        if event.state == "running":
            running.set()

    async with SwarmClient.connect(cluster.url) as client:
        task = Task(capability="hang", attempt_timeout=120)
        waiting = asyncio.create_task(client.run(task, timeout=60, on_progress=on_progress))
        await asyncio.wait_for(running.wait(), timeout=30)
        assert (await client.cancel(task.id)).state == "cancelled"
        with pytest.raises(TaskFailed) as failed:
            await waiting
        assert failed.value.code is ErrorCode.CANCELLED and steps[0] == "running"

        async def idle() -> bool:
            return all(a.in_flight == 0 for a in await client.agents())

        # The agent stopped the attempt (it would hold its slot for a minute otherwise).
        await wait_until(idle, 20, "the cancelled attempt to leave its agent")


def test_cli_errors_are_one_line_with_documented_exit_codes(
    cluster: LocalCluster, env: dict[str, str], tmp_path: Path
) -> None:
    bad_id = swarmhub("result", "bad id!", "--url", cluster.server_url, env=env)
    assert bad_id.returncode == 2 and "Invalid task id" in bad_id.stderr
    assert "Traceback" not in bad_id.stderr
    refused = swarmhub("status", "--url", f"nats://127.0.0.1:{free_port()}", env=env)
    assert refused.returncode == 4 and "Cannot connect" in refused.stderr
    not_nats = swarmhub("status", "--url", "http://127.0.0.1:8080", env=env)
    assert not_nats.returncode == 2 and "is not a NATS server URL" in not_nats.stderr
    no_app = swarmhub("worker", "nosuchmodule", "--app-dir", str(tmp_path), env=env)
    assert no_app.returncode == 2 and "No module named 'nosuchmodule'" in no_app.stderr
    busy = swarmhub("up", "--port", str(cluster.nats.port), "--data-dir", str(tmp_path), env=env)
    assert busy.returncode == 2 and "already in use" in busy.stderr
    assert "Traceback" not in busy.stderr
    help_text = swarmhub("--version", env=env)
    assert help_text.returncode == 0 and help_text.stdout.startswith("swarmhub ")
    service_help = subprocess.run(
        [sys.executable, "-m", "swarmhub.agent_worker", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert service_help.returncode == 0 and "SWARMHUB_CONCURRENCY" in service_help.stdout


def test_a_worker_stopped_by_pid_leaves_and_frees_its_slot(
    cluster: LocalCluster, env: dict[str, str], worker: subprocess.Popen[str]
) -> None:
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=30) == 0

    async def one_left() -> None:
        async with SwarmClient.connect(cluster.url) as client:

            async def left() -> bool:
                return len(await client.agents()) == 1

            await wait_until(left, 20, "the stopped worker to leave the registry")

    asyncio.run(one_left())
    # Its slot is free again: a new worker claims it.
    again = start_worker(cluster, env)
    try:
        try:
            asyncio.run(wait_for_agents(cluster.url, 2, timeout=120))
        except BaseException:
            print(worker_logs(cluster))  # shown by pytest when the test fails
            raise
    finally:
        stop_process(again, timeout=30)
