"""The raw pipeline's producer process: runs each step it is sent and answers with its figures.

`python -m swarmhub.loadgen.raw.producer --url URL --task-bytes N` listens for results, says
`{"ready": true}`, then reads one step per stdin line (`{"step": {...}, "run_id": "..."}`),
drives it with the load generator's own open/closed-loop drivers and recorder, and writes
`{"step": NAME, "figures": {...}}`. It exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.loadgen.drivers import DriveStats, clock
from swarmhub.loadgen.raw import protocol
from swarmhub.loadgen.raw.pipe import decode_line, emit, stdin_reader
from swarmhub.loadgen.recorder import Recorder
from swarmhub.loadgen.runner import LEAD_SECONDS, pace, plan
from swarmhub.loadgen.scenarios import ScenarioConfig
from swarmhub.loadgen.steps import Step, figures

CONNECT_TIMEOUT_S = 10.0


class RawTasks:
    """One operation = publish a task to the work queue (awaiting its PubAck), await its result."""

    def __init__(self, nc: Client, js: JetStreamContext, task_bytes: int, timeout: float) -> None:
        self.nc = nc
        self.js = js
        self.task_bytes = task_bytes
        self.timeout = timeout
        self.traffic = ScenarioConfig(timeout=timeout)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def setup(self) -> None:
        """Listen to every result once, instead of one subscription per task."""

        async def on_result(msg: Msg) -> None:
            future = self._waiting.get(protocol.task_id_of(msg.subject))
            if future is not None and not future.done():
                future.set_result(protocol.unpack(msg.data))

        await self.nc.subscribe(protocol.RESULT_ALL, cb=on_result)
        await self.nc.flush()

    def for_run(self, run_id: str) -> None:
        """Use `run_id` in the task ids and payload markers of the next step."""
        self.traffic = ScenarioConfig(timeout=self.timeout, run_id=run_id)

    def pick(self, seq: int) -> str:
        """Every request is a task."""
        return "task"

    async def run(self, kind: str, seq: int) -> None:
        """Submit task `seq` durably, then wait for its result."""
        task_id = f"{self.traffic.run_id}-{seq}"
        body = self.traffic.body(seq)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = future
        try:
            try:
                await self.js.publish(
                    protocol.TASK_SUBJECT,
                    protocol.task_message(task_id, body, self.task_bytes),
                    timeout=self.timeout,
                    headers={protocol.MSG_ID_HEADER: task_id},
                )
            except TimeoutError:
                raise ServiceError(
                    ErrorCode.UNAVAILABLE, f"No PubAck for task {task_id} in {self.timeout:g} s."
                ) from None
            try:
                result = await asyncio.wait_for(future, timeout=self.timeout)
            except TimeoutError:
                raise ServiceError(
                    ErrorCode.TIMEOUT, f"Task {task_id} had no result within {self.timeout:g} s."
                ) from None
        finally:
            self._waiting.pop(task_id, None)
        if result.get("status") != "succeeded":
            raise ServiceError(ErrorCode.HANDLER_ERROR, f"Task {task_id}: {result!r:.200}")


async def run_step(tasks: RawTasks, step: Step, run_id: str) -> dict[str, Any]:
    """Drive one step exactly as `swarmhub load` paces it; its figures."""
    tasks.for_run(run_id)
    cfg = step.load_config("raw", tasks.traffic)
    start = clock() + LEAD_SECONDS
    total, measure_start = plan(cfg, start)
    recorder = Recorder(measure_start, cfg.late_ms / 1000)
    stats = DriveStats()
    await pace(cfg, tasks, recorder, stats, start, total)
    return figures(recorder, stats)


async def produce(url: str, task_bytes: int, timeout: float) -> None:
    """Connect, say ready, then run every step sent on stdin until it closes."""
    nc = await asyncio.wait_for(
        nats.connect(url, name="raw-baseline-producer", allow_reconnect=False),
        timeout=CONNECT_TIMEOUT_S,
    )
    try:
        tasks = RawTasks(nc, nc.jetstream(timeout=timeout), task_bytes, timeout)
        await tasks.setup()
        reader = await stdin_reader()
        emit({"ready": True, "pid": os.getpid()})
        while (command := decode_line(await reader.readline())) is not None:
            step = Step.from_dict(command["step"])
            emit({"step": step.name, "figures": await run_step(tasks, step, command["run_id"])})
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and produce."""
    parser = argparse.ArgumentParser(prog="python -m swarmhub.loadgen.raw.producer")
    parser.add_argument("--url", required=True)
    parser.add_argument("--task-bytes", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(produce(args.url, args.task_bytes, args.timeout))
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
