"""Chaos harness: submit known ids, break things from outside, heal, drain, classify every id."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from swarmhub import subjects
from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port_block
from swarmhub.errors import ServiceError
from swarmhub.schemas import ResultStatus, Task, TaskResult

FAST_FAILOVER_ENV = {
    "SWARMHUB_ACK_WAIT": "4",
    "SWARMHUB_HEARTBEAT_INTERVAL": "0.5",
    "SWARMHUB_EXPIRE_AFTER": "2.5",
    "SWARMHUB_RETRY_BACKOFF": "0.05",
    "SWARMHUB_DRAIN_TIMEOUT": "5",
    "SWARMHUB_LEASE_TTL": "2",
}


def make_cluster(tmp: Path, **overrides: object) -> LocalCluster:
    """A local cluster tuned for quick failure detection, on free loopback ports."""
    env = {**FAST_FAILOVER_ENV, **overrides.pop("extra_env", {})}  # type: ignore[dict-item]
    # Nodes of a JetStream cluster listen on consecutive client ports: all of them must be free.
    port = free_port_block(int(overrides.get("nats_nodes", 1)))  # type: ignore[call-overload]
    config = ClusterConfig(data_dir=tmp, port=port, extra_env=env, **overrides)  # type: ignore[arg-type]
    return LocalCluster(config, on_event=lambda text: print(f"[cluster] {text}"))


@dataclass
class Ledger:
    """Which submissions JetStream acknowledged, and which failed loudly."""

    accepted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    submit_times: list[float] = field(default_factory=list)

    def longest_gap(self) -> float:
        """Longest time between two acknowledged submissions, in seconds."""
        times = sorted(self.submit_times)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def submit_stream(
    client: SwarmClient,
    tasks: list[Task],
    ledger: Ledger,
    *,
    rate: float,
    timeout: float = 2.0,
) -> None:
    """Submit at a steady rate; a refused submission is recorded, never silently dropped."""
    interval = 1.0 / rate
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def one(task: Task) -> None:
        try:
            await client.bus.js_publish(
                subjects.task_submit(client.tenant, task.capability, task.priority),
                task,
                msg_id=subjects.submit_id(client.tenant, task.id, client.bus.dedupe_key),
                timeout=timeout,
            )
            ledger.accepted.append(task.id)
            ledger.submit_times.append(time.monotonic())
        except (ServiceError, Exception):
            ledger.refused.append(task.id)

    for i, task in enumerate(tasks):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        job = asyncio.create_task(one(task))
        pending.add(job)
        job.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending)


@dataclass
class Classification:
    """Every accepted id, by fate."""

    rows: Counter[str]
    lost: list[str]
    duplicated: list[str]

    def table(self, title: str) -> str:
        """A printable classification table."""
        lines = [f"{title}", f"  {'fate':<22} {'tasks':>6}"]
        for fate in ("completed once", "completed twice", "dead-lettered", "lost", "refused"):
            lines.append(f"  {fate:<22} {self.rows.get(fate, 0):>6}")
        return "\n".join(lines)


async def classify(
    client: SwarmClient, collector: ResultCollector, ledger: Ledger, timeout: float
) -> Classification:
    """Drain until every accepted id has a result (or time runs out), then classify."""
    results = await collector.wait_all(ledger.accepted, timeout=timeout)
    await asyncio.sleep(0.5)  # a duplicate event, if one were produced, would arrive by now
    rows: Counter[str] = Counter()
    lost, duplicated = [], []
    for task_id in ledger.accepted:
        result = results.get(task_id) or await stored_result(client, task_id)
        if result is None:
            rows["lost"] += 1
            lost.append(task_id)
            continue
        if collector.events.get(task_id, 0) > 1:
            rows["completed twice"] += 1
            duplicated.append(task_id)
        elif result.status is ResultStatus.DEAD_LETTERED:
            rows["dead-lettered"] += 1
        else:
            rows["completed once"] += 1
    rows["refused"] = len(ledger.refused)
    return Classification(rows, lost, duplicated)


async def stored_result(client: SwarmClient, task_id: str, tries: int = 20) -> TaskResult | None:
    """The stored result, asking again while the store is briefly unavailable."""
    for _ in range(tries - 1):
        try:
            return await client.result(task_id)
        except ServiceError as exc:
            if not exc.retryable:
                raise
            await asyncio.sleep(0.5)
    return await client.result(task_id)


def kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Send a signal to one process by its PID."""
    if psutil.pid_exists(pid):
        os.kill(pid, sig)


def rng(seed: int | None = None) -> random.Random:
    """A seeded random source; the seed comes from SWARMHUB_CHAOS_SEED when set."""
    chosen = seed if seed is not None else int(os.environ.get("SWARMHUB_CHAOS_SEED", "1234"))
    print(f"chaos seed: {chosen}")
    return random.Random(chosen)
