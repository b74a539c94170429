"""Routing cost as the swarm grows: `python -m swarmhub.loadgen.routing [--agents 10,100,1000]`.

Times the router's own decision per task (AgentView.pick, then acquire and release of the slot)
over swarms of each size, agents half busy, in this process: what one dispatch costs the router
beyond the messaging, which is the part that could grow with the number of agents.
"""

from __future__ import annotations

import argparse
import random
import time

from swarmhub.schemas import AgentRecord
from swarmhub.task_router.registry import AgentView


def per_task_us(agents: int, tasks: int = 20_000, capacity: int = 16) -> float:
    """Microseconds of pick + acquire + release per task over `agents` half-busy agents."""
    view = AgentView()
    for i in range(agents):
        view.upsert(AgentRecord(agent_id=f"agent-{i}", capabilities=["echo"], capacity=capacity))
    busy = []
    for _ in range(agents * capacity // 2):  # half of every slot taken, as under load
        chosen = view.pick("echo", set())
        assert chosen is not None
        view.acquire(chosen.agent_id)
        busy.append(chosen.agent_id)
    rng = random.Random(7)
    started = time.perf_counter()
    for _ in range(tasks):
        chosen = view.pick("echo", set())
        assert chosen is not None
        view.acquire(chosen.agent_id)
        view.release(busy.pop(rng.randrange(len(busy))))
        busy.append(chosen.agent_id)
    return (time.perf_counter() - started) / tasks * 1e6


def main() -> None:
    """Print the routing cost per task for each swarm size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", default="10,100,1000", help="swarm sizes, comma-separated")
    parser.add_argument("--tasks", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{'AGENTS':>7}  {'µs/task':>8}  (pick + acquire + release, agents half busy)")
    for size in (int(n) for n in args.agents.split(",")):
        print(f"{size:>7}  {per_task_us(size, args.tasks):>8.2f}")


if __name__ == "__main__":
    main()
