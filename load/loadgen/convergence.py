"""Registry convergence: `python -m swarmhub.loadgen.convergence [--agents 1000] [--die 100]`.

Starts a local cluster, registers `--agents` stand-in agents (one process heartbeats them all, as
the operator role may in load tests), waits until the coordinator's registry and every router's
view hold them, then lets `--die` of them go silent at once and measures how long the registry
and the routers take to drop them (an agent is expired after missing heartbeats for
`expire_after`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from swarmhub import subjects
from swarmhub.client import SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from swarmhub.errors import ServiceError
from swarmhub.schemas import AgentRegistration, Heartbeat, RegisterReply

CAPABILITY = "loadgen-none"  # offered by no worker: routers never dispatch to stand-ins


async def _router_agents(client: SwarmClient) -> list[int]:
    """How many agents each router's view holds ($SRV.STATS)."""
    stats = await client.discover("STATS", "task-router", wait=0.3)
    return [int((s.get("data") or {}).get("agents", 0)) for s in stats]


async def _until(predicate: object, timeout: float) -> float:
    """Seconds until the async `predicate` holds (raises TimeoutError after `timeout`)."""
    started = time.monotonic()
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not converged within {timeout:g} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def measure(url: str, agents: int, die: int) -> dict[str, float]:
    """Register, keep alive, silence `die` of them; the figures."""
    async with SwarmClient.connect(url, role="operator") as client:

        async def ready() -> bool:
            try:
                await client.agents()
            except ServiceError:
                return False  # the coordinator has not made the registry yet
            return len(await client.agents()) >= 2 and bool(await _router_agents(client))

        await _until(ready, 60)
        base = len(await client.agents())
        ids = [f"stand-in-{os.getpid()}-{i}" for i in range(agents)]
        started = time.monotonic()
        replies = await asyncio.gather(
            *(
                client.bus.request(
                    subjects.swarm_register(agent_id),
                    AgentRegistration(agent_id=agent_id, capabilities=[CAPABILITY], capacity=1),
                    RegisterReply,
                    timeout=30,
                )
                for agent_id in ids
            )
        )
        alive = set(ids)
        interval = replies[0].heartbeat_interval

        async def beat() -> None:
            while True:
                for agent_id in list(alive):
                    await client.bus.publish(
                        subjects.swarm_heartbeat(agent_id),
                        Heartbeat(
                            agent_id=agent_id, capabilities=[CAPABILITY], capacity=1, in_flight=0
                        ),
                    )
                await asyncio.sleep(interval)

        beating = asyncio.create_task(beat())
        try:

            async def all_in() -> bool:
                views = await _router_agents(client)
                return len(await client.agents()) >= base + agents and min(views) >= base + agents

            registered = time.monotonic() - started + await _until(all_in, 120)
            silenced = ids[:die]
            alive.difference_update(silenced)
            gone_at = time.monotonic()

            async def registry_dropped() -> bool:
                return len(await client.agents()) <= base + agents - die

            registry_s = await _until(registry_dropped, 120)

            async def routers_dropped() -> bool:
                return max(await _router_agents(client)) <= base + agents - die

            await _until(routers_dropped, 120)
            routers_s = time.monotonic() - gone_at
        finally:
            beating.cancel()
        return {
            "registered_s": registered,
            "expire_after_s": replies[0].expire_after,
            "registry_s": registry_s,
            "routers_s": routers_s,
        }


def main() -> None:
    """Run it on a fresh local cluster and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--die", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(
            ClusterConfig(data_dir=Path(tmp), port=free_port()), on_event=lambda text: None
        ).start()
        try:
            figures = asyncio.run(measure(cluster.url, args.agents, args.die))
        finally:
            cluster.stop()
    print(
        f"{args.agents} stand-in agents registered and seen by every router in "
        f"{figures['registered_s']:.1f} s; {args.die} went silent at once: the registry dropped "
        f"them after {figures['registry_s']:.1f} s, every router after "
        f"{figures['routers_s']:.1f} s (expire_after {figures['expire_after_s']:g} s)"
    )


if __name__ == "__main__":
    main()
