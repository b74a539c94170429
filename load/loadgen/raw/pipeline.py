"""Runs the raw baseline: its own nats-server, consumer and producer processes, step by step."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swarmhub.embedded import NatsServer
from swarmhub.loadgen.measure import measured_steps
from swarmhub.loadgen.raw.pipe import Child
from swarmhub.loadgen.steps import Step

READY_TIMEOUT_S = 30.0
PRODUCER = "producer"


def step_timeout(seconds: float, warmup: float, task_timeout: float) -> float:
    """How long one step may take before the bench gives up on the producer."""
    return warmup + seconds + task_timeout + 30.0


def run_raw(
    steps: Sequence[Step], task_bytes: int, timeout: float, progress: bool = True
) -> dict[str, Any]:
    """Start the raw pipeline in a temporary folder, run every step, stop it all; its figures."""
    data_dir = Path(tempfile.mkdtemp(prefix="swarmhub-raw-"))
    server = NatsServer(data_dir / "nats", name="raw-baseline-nats")
    try:
        server.start()
        if progress:
            assert server.proc is not None
            print(
                f"[baseline] raw nats-server at {server.url} (pid {server.proc.pid})",
                file=sys.stderr,
                flush=True,
            )
        return asyncio.run(_drive(server, data_dir, steps, task_bytes, timeout, progress))
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _drive(
    server: NatsServer,
    data_dir: Path,
    steps: Sequence[Step],
    task_bytes: int,
    timeout: float,
    progress: bool,
) -> dict[str, Any]:
    budget = sum(step_timeout(s.seconds, s.warmup, timeout) for s in steps) + READY_TIMEOUT_S
    python = [sys.executable, "-m"]
    children: list[Child] = []
    try:
        consumer = await Child.spawn(
            "consumer",
            [
                *python,
                "swarmhub.loadgen.raw.consumer",
                "--url",
                server.url,
                "--max-seconds",
                f"{budget:g}",
            ],
            data_dir / "consumer.log",
        )
        children.append(consumer)
        await consumer.read(READY_TIMEOUT_S)
        producer = await Child.spawn(
            PRODUCER,
            [
                *python, "swarmhub.loadgen.raw.producer", "--url", server.url,
                "--task-bytes", str(task_bytes), "--timeout", f"{timeout:g}",
            ],
            data_dir / "producer.log",
        )  # fmt: skip
        children.append(producer)
        await producer.read(READY_TIMEOUT_S)
        assert server.proc is not None
        pids = {"nats-server": server.proc.pid, "consumer": consumer.pid, PRODUCER: producer.pid}
        run_id = secrets.token_hex(4)

        async def one(step: Step, index: int) -> dict[str, Any]:
            await producer.send({"step": step.as_dict(), "run_id": f"raw{run_id}s{index}"})
            answer = await producer.read(step_timeout(step.seconds, step.warmup, timeout))
            figures: dict[str, Any] = answer["figures"]
            return figures

        return await measured_steps("raw", steps, lambda: pids, {PRODUCER}, one, progress)
    finally:
        for child in reversed(children):
            await child.stop()
