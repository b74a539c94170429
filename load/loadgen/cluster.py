"""An embedded cluster the load generator starts for itself (`--cluster`), and its readiness."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from swarmhub.client import SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from swarmhub.errors import ErrorCode, ServiceError


def _event(text: str) -> None:
    print(f"[cluster] {text}", file=sys.stderr, flush=True)


@contextmanager
def local_cluster(workers: int, concurrency: int = 64) -> Iterator[LocalCluster]:
    """A LocalCluster on a free loopback port in a temporary folder, stopped and removed after."""
    data_dir = Path(tempfile.mkdtemp(prefix="swarmhub-load-"))
    cluster = LocalCluster(
        ClusterConfig(
            data_dir=data_dir, port=free_port(), workers=workers, worker_concurrency=concurrency
        ),
        on_event=_event,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def wait_ready(client: SwarmClient, agents: int, timeout: float = 60.0) -> None:
    """Wait until `agents` agents are registered and a task-router answers discovery."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            live = await client.agents()
        except ServiceError:
            live = []
        routers = await client.discover("PING", "task-router", wait=0.2)
        if len(live) >= agents and routers:
            return
        if time.monotonic() > deadline:
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"The cluster was not ready after {timeout:g} s: {len(live)} of {agents} agents "
                f"registered, {len(routers)} task-routers answering.",
            )
        await asyncio.sleep(0.2)
