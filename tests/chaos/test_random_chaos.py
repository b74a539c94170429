"""Seeded random chaos: kill and pause random services and one nats node during thousands of tasks.

SWARMHUB_CHAOS_SEED picks the seed (printed); SWARMHUB_SOAK=1 runs a longer soak.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.schemas import Task
from tests.chaos.harness import Ledger, classify, kill, make_cluster, rng, submit_stream
from tests.conftest import wait_for_agents

SOAK = os.environ.get("SWARMHUB_SOAK") == "1"


async def test_seeded_random_chaos(tmp_path: Path) -> None:
    chooser = rng()
    count, rate = (20_000, 150) if SOAK else (2_000, 100)
    cluster = make_cluster(
        tmp_path, workers=3, routers=2, coordinators=2, nats_nodes=3, worker_concurrency=32
    ).start()
    actions: list[str] = []
    try:
        await wait_for_agents(cluster.url, 3)
        work = [
            _task(chooser.choice(["sleep", "echo", "cpu"]), chooser.randint(1, 200))
            for _ in range(count)
        ]
        services = [c.spec.name for c in cluster.supervisor.children]
        async with await SwarmClient.connect(cluster.url, reconnect=True) as client:
            collector = await ResultCollector(client).start()
            ledger = Ledger()
            submitting = asyncio.create_task(submit_stream(client, work, ledger, rate=rate))
            nats_turn = chooser.randint(2, 5)  # exactly one nats node dies, at a seeded moment
            background: set[asyncio.Task[None]] = set()
            turn = 0
            while not submitting.done():
                await asyncio.sleep(chooser.uniform(0.8, 2.0))
                turn += 1
                roll = chooser.random()
                if turn == nats_turn:
                    victim_node = chooser.choice(cluster.nodes)
                    victim_node.kill()
                    actions.append(f"SIGKILL nats {victim_node.name}")

                    async def revive(n: object = victim_node) -> None:
                        await asyncio.sleep(5.0)
                        await asyncio.to_thread(n.start)  # type: ignore[attr-defined]

                    background.add(asyncio.create_task(revive()))
                    continue
                name = chooser.choice(services)
                child = cluster.supervisor.child(name)
                if child.proc is None or child.proc.poll() is not None:
                    continue
                if roll < 0.6:
                    kill(child.proc.pid)
                    actions.append(f"SIGKILL {name}")
                else:
                    pid = child.proc.pid
                    kill(pid, signal.SIGSTOP)
                    pause = chooser.uniform(1.0, 5.0)
                    actions.append(f"SIGSTOP {name} {pause:.1f} s")
                    asyncio.get_running_loop().call_later(pause, kill, pid, signal.SIGCONT)
            await submitting
            if background:
                await asyncio.wait(background)
            await asyncio.sleep(5.0)  # let the last pause end
            verdict = await classify(client, collector, ledger, timeout=300)
            await collector.stop()
        print(f"\nchaos actions ({len(actions)}): " + "; ".join(actions))
        print(verdict.table(f"seeded random chaos, {count} tasks"))
        print(f"  longest gap between acknowledged submissions: {ledger.longest_gap():.2f} s")
        assert verdict.rows["lost"] == 0, verdict.lost[:5]
        assert verdict.rows["completed twice"] == 0, verdict.duplicated[:5]
    finally:
        for child in cluster.supervisor.children:
            if child.proc is not None and child.proc.poll() is None:
                kill(child.proc.pid, signal.SIGCONT)
        cluster.stop()


def _task(capability: str, n: int) -> Task:
    payload: dict[str, object] = {
        "sleep": {"ms": n},
        "echo": {"n": n},
        "cpu": {"rounds": 100 + n},
    }[capability]
    return Task(capability=capability, payload=payload, max_attempts=10)
