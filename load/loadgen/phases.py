"""Where a lone task's time goes: `python -m swarmhub.loadgen.phases [--count N] [--url URL]`.

Tasks are sent one at a time, 20 ms apart, so every process is idle when its message comes (the
latency a quiet hub adds, hop by hop). Each result's own timings split the way: created →
dispatched (client → JetStream → router), dispatched → result made (router → agent → router),
made → heard by the client (the result write and its event). Without `--url` it starts its own
local cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

from nats.aio.msg import Msg

from swarmhub import subjects
from swarmhub.client import SwarmClient, result_of
from swarmhub.loadgen.cluster import local_cluster, wait_ready
from swarmhub.schemas import Task, TaskResult

PAUSE_S = 0.02
WARMUP = 20


@dataclass(frozen=True)
class Phases:
    """One task's way, in milliseconds."""

    to_dispatch: float
    to_result: float
    to_client: float

    @property
    def total(self) -> float:
        """Created to heard by the client."""
        return self.to_dispatch + self.to_result + self.to_client


def split(result: TaskResult, created_at: float, heard_at: float) -> Phases:
    """The phases of one task from its result's timings and when its event was heard."""
    timings = result.timings
    heard_ms = (heard_at - created_at) * 1000
    return Phases(
        to_dispatch=timings.queued_ms,
        to_result=timings.total_ms - timings.queued_ms,
        to_client=heard_ms - timings.total_ms,
    )


def medians(samples: list[Phases]) -> Phases:
    """The median of each phase (each on its own, so they need not add up to a median total)."""
    return Phases(
        to_dispatch=statistics.median(s.to_dispatch for s in samples),
        to_result=statistics.median(s.to_result for s in samples),
        to_client=statistics.median(s.to_client for s in samples),
    )


async def measure(url: str, count: int, capability: str = "echo") -> list[Phases]:
    """Send `count` lone tasks (after a warm-up) and split each one's way."""
    async with await SwarmClient.connect(url) as client:
        await wait_ready(client, 1)
        waiting: dict[str, asyncio.Future[tuple[float, TaskResult]]] = {}

        async def on_result(msg: Msg) -> None:
            heard = time.time()
            result = result_of(msg)
            if result is None:
                return
            future = waiting.pop(result.task_id, None)
            if future is not None and not future.done():
                future.set_result((heard, result))

        sub = await client.bus.nc.subscribe(subjects.tenant_results(client.tenant), cb=on_result)
        await client.bus.nc.flush()
        samples: list[Phases] = []
        try:
            for n in range(WARMUP + count):
                task = Task(capability=capability, payload={"n": n})
                future = asyncio.get_running_loop().create_future()
                waiting[task.id] = future
                await client.submit(task)
                heard, result = await asyncio.wait_for(future, 30)
                if n >= WARMUP:
                    samples.append(split(result, task.created_at, heard))
                await asyncio.sleep(PAUSE_S)
        finally:
            await sub.unsubscribe()
        return samples


def main() -> None:
    """Measure on the given hub or a fresh local cluster, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="tasks measured (200)")
    parser.add_argument("--url", default=None, help="a running hub (default: start one)")
    args = parser.parse_args()
    if args.url:
        samples = asyncio.run(measure(args.url, args.count))
    else:
        with local_cluster(workers=2) as cluster:
            samples = asyncio.run(measure(cluster.url, args.count))
    mid = medians(samples)
    total = statistics.median(s.total for s in samples)
    print(
        f"P50 of {len(samples)} lone tasks, ms: created -> dispatched {mid.to_dispatch:.2f}, "
        f"dispatched -> result made {mid.to_result:.2f}, made -> heard {mid.to_client:.2f}; "
        f"created -> heard {total:.2f}"
    )


if __name__ == "__main__":
    main()
