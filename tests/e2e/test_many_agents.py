"""Hundreds of real agents (AgentWorker, several per process) on a secured embedded cluster.

The small version of `python -m swarmhub.loadgen.thousand`: 200 agents in 4 host processes, each
agent its own NATS connection logged in as its own agent slot. One run, then facts checked one by
one: everyone registered, tasks spread within capacity, exactly one result per task, and a
SIGKILLed host's agents leave the registry and the routers while tasks go on completing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import psutil
import pytest

from swarmhub.loadgen.thousand import Outcome, Plan, measure, swarm_cluster

PLAN = Plan(
    agents=200,
    hosts=4,
    concurrency=4,
    tasks=1600,
    in_flight=256,
    kill_hosts=1,
    kill_tasks=600,
    after_tasks=200,
    idle_window=0,
    step_timeout=60,
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    started = time.monotonic()
    with swarm_cluster(PLAN, tmp_path_factory.mktemp("swarm")) as cluster:
        pids = list(cluster.pids().values())
        result = asyncio.run(measure(cluster, PLAN))
    assert not [p for p in pids if psutil.pid_exists(p)], "a cluster process outlived the run"
    print(
        f"\n{PLAN.agents} agents, {len(result.results)} tasks: {time.monotonic() - started:.1f} s"
    )
    yield result


def test_every_agent_registers_from_its_host(outcome: Outcome) -> None:
    # Given 200 AgentWorkers in 4 processes, Then the registry and every router held them all
    assert len(outcome.registered) == PLAN.agents
    assert outcome.figures["host_pids"] == PLAN.hosts
    assert outcome.figures["registry_s"] < PLAN.step_timeout


def test_tasks_spread_evenly_within_capacity(outcome: Outcome) -> None:
    # When 1,600 echo tasks ran, 256 at a time
    counts = outcome.per_agent
    assert sum(counts.values()) == PLAN.tasks
    assert set(counts) == outcome.registered, "a task ran on an agent outside the registry"
    # Then no agent was asked beyond its capacity (it would have answered busy: a second attempt)
    assert outcome.figures["retried"] == 0
    # And the router spread them: the least loaded of a few sampled agents takes each task, so
    # none gets more than twice its fair share plus one full load of its capacity...
    fair = PLAN.tasks / PLAN.agents
    bound = 2 * fair + PLAN.concurrency
    assert max(counts.values()) <= bound, f"an agent got {max(counts.values())} > {bound}"
    # ...and (almost) every agent got some
    idle = [a for a, n in counts.items() if n == 0]
    assert len(idle) <= PLAN.agents // 50, f"{len(idle)} agents got no task"


def test_every_task_has_exactly_one_result(outcome: Outcome) -> None:
    for batch in outcome.batches:
        assert not outcome.unfinished(batch), f"{batch}: tasks without a final result"
        assert not outcome.duplicated(batch), f"{batch}: tasks with more than one result"
    assert not outcome.failed("even")
    wrong = [t.id for t in outcome.batches["even"] if outcome.results[t.id].output != t.payload]
    assert not wrong, f"{len(wrong)} echo outputs differ from their payloads"


def test_a_killed_hosts_agents_leave_and_tasks_go_on(outcome: Outcome) -> None:
    # When one host (50 agents) was SIGKILLed under load
    assert len(outcome.victims) == PLAN.agents // PLAN.hosts
    # Then the registry and every router dropped exactly its agents
    assert not outcome.victims & outcome.left_after_kill
    assert outcome.left_after_kill == outcome.registered - outcome.victims
    assert outcome.router_views_after_kill == [PLAN.agents - len(outcome.victims)] * PLAN.routers
    # And tasks sent afterwards all succeeded, none on a dead agent
    assert not outcome.failed("after")
    assert outcome.figures["after_on_dead"] == 0
    # And the surviving hosts drained and exited cleanly on SIGTERM
    codes = outcome.host_exit_codes
    assert codes.count(None) == PLAN.kill_hosts and set(codes) - {None} == {0}


def test_no_task_fails_while_a_killed_hosts_agents_expire(outcome: Outcome) -> None:
    assert not outcome.failed("kill")
