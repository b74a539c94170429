"""Priority lanes: subjects per lane, the planner's weighted shares, and who takes a freed agent.

The planner is pure (no clock, no I/O); each test states the lanes as the router would see them.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from swarmhub import subjects
from swarmhub.schemas import AgentRecord, Priority
from swarmhub.task_router.lanes import RANKS, WEIGHTS, LanePlanner, LaneState
from swarmhub.task_router.registry import AgentView

CRITICAL, HIGH, NORMAL, LOW = range(4)
IDLE = LaneState()


def backlogged(backlog: int = 1000, held: int = 0, outstanding: int = 0) -> LaneState:
    return LaneState(held=held, outstanding=outstanding, backlog=backlog, active=True)


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching with `*` and `>`."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


# -- subjects ------------------------------------------------------------------------------


def test_lanes_are_the_priorities_most_urgent_first() -> None:
    assert set(subjects.LANES) == {p.value for p in Priority}
    assert subjects.LANES[0] == "critical" and subjects.LANES[-1] == "low"
    assert subjects.DEFAULT_LANE == Priority.NORMAL


def test_every_submit_subject_names_tenant_capability_and_lane() -> None:
    assert subjects.task_submit("ann", "echo") == "hub.task.submit.ann.echo.normal"
    assert subjects.task_submit("ann", "echo", Priority.NORMAL) == "hub.task.submit.ann.echo.normal"
    assert subjects.task_submit("ann", "echo", Priority.HIGH) == "hub.task.submit.ann.echo.high"
    assert subjects.task_submit("low", "low", "low") == "hub.task.submit.low.low.low"


@pytest.mark.parametrize("lane", subjects.LANES)
def test_tenant_capability_and_lane_read_back_from_every_lane(lane: str) -> None:
    subject = subjects.task_submit("normal", "cpu", lane)
    assert subjects.tenant_of(subject) == "normal"
    assert subjects.capability_of(subject) == "cpu"
    assert subjects.lane_of(subject) == lane


@pytest.mark.parametrize("lane", subjects.LANES)
def test_each_lane_filter_takes_its_own_subjects_only(lane: str) -> None:
    # Given a task on every lane (a capability named like a lane included)
    for capability in ("echo", "low", "critical"):
        for other in subjects.LANES:
            subject = subjects.task_submit("ann", capability, other)
            # Then exactly its own lane's filter matches it, and the stream captures it
            assert matches(subjects.lane_filter(lane), subject) == (other == lane)
            assert matches(subjects.TASK_SUBMIT_ALL, subject)


def test_lane_consumers_are_distinct_and_normal_keeps_the_old_name() -> None:
    names = [subjects.lane_consumer(lane) for lane in subjects.LANES]
    assert len(set(names)) == len(names)
    assert subjects.lane_consumer("normal") == subjects.ROUTER_CONSUMER
    assert subjects.lane_consumer("low") == "task-router-low"


def test_an_unknown_priority_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="must be one of critical, high, normal, low"):
        subjects.task_submit("ann", "echo", "urgent")


def test_span_templates_name_tenant_capability_and_lane_tokens() -> None:
    for lane in ("normal", "low"):
        assert subjects.submit_template(lane) == "hub.task.submit.{tenant}.{capability}.{priority}"


# -- the planner ---------------------------------------------------------------------------


def test_idle_lanes_each_keep_one_watching_pull_beyond_the_slots() -> None:
    planner = LanePlanner(slots=4, min_pull=1)
    # Given a router whose slots are all held by low tasks
    lanes = [IDLE, IDLE, IDLE, backlogged(held=4)]
    # Then every other lane still gets one pull, so its next task is delivered at once
    assert planner.plan(lanes) == [1, 1, 1, 0]
    # And an idle lane that has its watching pull gets no more
    assert planner.plan([LaneState(outstanding=1)] * 3 + [backlogged(held=4)]) == [0, 0, 0, 0]


def test_one_receiving_lane_gets_every_free_slot_as_before_lanes() -> None:
    planner = LanePlanner(slots=256, min_pull=64)
    watching = LaneState(outstanding=1)
    normal = LaneState(held=10, outstanding=0, backlog=0, active=True)
    assert planner.plan([watching, watching, normal, watching]) == [0, 0, 246, 0]


def test_a_few_free_slots_wait_for_a_batch_unless_the_lane_has_nothing_asked() -> None:
    planner = LanePlanner(slots=256, min_pull=64)
    watching = LaneState(outstanding=1)
    # Given 10 free slots and the receiving lane still has pulls outstanding: wait
    asking = LaneState(held=200, outstanding=46, active=True)
    assert planner.plan([watching, watching, asking, watching]) == [0, 0, 0, 0]
    # When it has none outstanding (its backlog fills pulls at once): ask for what is free
    drained = LaneState(held=246, outstanding=0, backlog=500, active=True)
    assert planner.plan([watching, watching, drained, watching]) == [0, 0, 10, 0]


def test_contending_lanes_share_each_slot_as_it_frees() -> None:
    planner = LanePlanner(slots=256, min_pull=64)
    # Given critical and low both waiting, each still with a pull outstanding, and one free slot
    lanes = [backlogged(held=100, outstanding=5), IDLE, IDLE, backlogged(held=149, outstanding=1)]
    lanes[1] = lanes[2] = LaneState(outstanding=1)
    # Then the slot goes out now (not after a batch of 64), and the planner says lanes contend
    assert sum(planner.plan(lanes)) == 1
    assert planner.contended
    # While one lane alone wants slots, it waits for a batch
    alone = [LaneState(outstanding=1)] * 3 + [backlogged(held=254, outstanding=1)]
    assert planner.plan(alone) == [0, 0, 0, 0]
    assert not planner.contended


def test_all_four_backlogged_share_slots_by_weight() -> None:
    planner = LanePlanner(slots=15, min_pull=1)
    grants = planner.plan([backlogged() for _ in subjects.LANES])
    assert grants == [WEIGHTS[lane] for lane in subjects.LANES] == [8, 4, 2, 1]


def test_one_slot_at_a_time_still_follows_the_weights_and_low_is_never_starved() -> None:
    # Given critical and low both backlogged and a full router freeing one slot at a time
    planner = LanePlanner(slots=100, min_pull=1)
    won: list[int] = []
    for _ in range(90):
        grants = planner.plan([backlogged(held=80), IDLE, IDLE, backlogged(held=19)])
        # (the idle lanes' watching pulls are granted once, then they have one outstanding)
        won += [lane for lane in (CRITICAL, LOW) if grants[lane]]
        assert sum(grants[lane] for lane in (CRITICAL, LOW)) == 1
    # Then critical gets 8 of every 9 slots and low the 9th, in every window of 9
    assert Counter(won) == {CRITICAL: 80, LOW: 10}
    for start in range(0, 90, 9):
        assert won[start : start + 9].count(LOW) == 1


def test_a_lane_asks_no_more_than_its_backlog() -> None:
    # Given 64 slots, 40 critical tasks waiting and thousands of low ones
    planner = LanePlanner(slots=64, min_pull=1)
    grants = planner.plan([backlogged(backlog=40), IDLE, IDLE, backlogged(backlog=5000)])
    # Then critical asks for its 40 (not its weight's 57), low for the rest, idle lanes watch
    assert grants == [40, 1, 1, 24]


def test_a_receiving_lane_keeps_few_pulls_waiting_while_another_has_a_backlog() -> None:
    # Given critical receiving a trickle (no backlog) while low has thousands waiting
    planner = LanePlanner(slots=256, min_pull=1)
    trickle = LaneState(held=0, outstanding=0, backlog=0, active=True)
    grants = planner.plan([trickle, IDLE, IDLE, backlogged(held=0)])
    # Then critical holds only stream_cap slots open for arrivals; low gets the rest
    assert grants[CRITICAL] == planner.stream_cap == 16
    assert grants[LOW] == 256 + 2 - 2 - 16


def test_a_router_of_one_slot_serves_every_lane() -> None:
    planner = LanePlanner(slots=1, min_pull=1)
    # Given idle lanes watching and low backlogged with nothing held
    assert planner.plan([LaneState(outstanding=1)] * 3 + [backlogged()]) == [0, 0, 0, 1]


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LanePlanner(slots=8, weights=[1, 0, 1, 1])


class SimulatedRouter:
    """A router over four lanes with fixed arrival, as the planner's caller sees it."""

    def __init__(self, planner: LanePlanner, backlog: list[int], rng: random.Random) -> None:
        self.planner = planner
        self.backlog = backlog
        self.held: list[list[int]] = [[] for _ in backlog]  # task ids held per lane
        self.outstanding = [0] * len(backlog)
        self.started: list[tuple[int, int]] = []  # (lane, step)
        self.rng = rng

    def states(self) -> list[LaneState]:
        return [
            LaneState(
                held=len(self.held[i]),
                outstanding=self.outstanding[i],
                backlog=self.backlog[i],
                active=self.backlog[i] > 0 or bool(self.held[i]),
            )
            for i in range(len(self.backlog))
        ]

    def step(self, now: int) -> None:
        for lane, batch in enumerate(self.planner.plan(self.states())):
            self.outstanding[lane] += batch
        # The server fills what it can at once; the rest waits (expires, in real life)
        for lane in range(len(self.backlog)):
            filled = min(self.outstanding[lane], self.backlog[lane])
            self.backlog[lane] -= filled
            self.outstanding[lane] -= filled
            self.held[lane] += [now] * filled
            self.started += [(lane, now)] * filled
        total = sum(len(h) for h in self.held) + sum(self.outstanding)
        assert total <= self.planner.capacity
        # One held task finishes (an agent frees up), the oldest of a random lane holding some
        holding = [lane for lane in range(len(self.held)) if self.held[lane]]
        if holding:
            self.held[self.rng.choice(holding)].pop(0)


def test_a_simulated_backlog_drains_by_priority_and_stays_within_capacity() -> None:
    # Given 2,000 low tasks waiting, then 100 each of critical, high and normal
    router = SimulatedRouter(
        LanePlanner(slots=16, min_pull=4), [100, 100, 100, 2000], random.Random(7)
    )
    step = 0
    while any(router.backlog) and step < 10_000:
        router.step(step)
        step += 1
    assert not any(router.backlog), "every lane drained"
    # Then the median start of each lane follows its rank, and low started all along
    median = {}
    for lane in range(4):
        steps = sorted(s for lane_, s in router.started if lane_ == lane)
        median[lane] = steps[len(steps) // 2]
    assert median[CRITICAL] < median[HIGH] < median[NORMAL] < median[LOW]
    low_in_first_300 = sum(1 for lane, s in router.started if lane == LOW and s < 300)
    assert low_in_first_300 >= 300 // 15 - 2  # at least its weight's share while others wait


# -- the agent wait ------------------------------------------------------------------------


async def test_a_freed_agent_slot_goes_to_the_most_urgent_waiter_first() -> None:
    # Given one agent of capacity 1, busy, and waiters of every lane, the least urgent first
    view = AgentView()
    view.upsert(AgentRecord(agent_id="a", capabilities=["echo"], capacity=1))
    view.acquire("a")
    order: list[str] = []

    async def waiter(lane: str) -> None:
        while view.pick("echo", set()) is None:
            await view.wait_for_change(5.0, RANKS[lane])
        view.acquire("a")
        order.append(lane)

    tasks = [asyncio.create_task(waiter(lane)) for lane in reversed(subjects.LANES)]
    await asyncio.sleep(0)
    # When the slot frees once, then again as each winner finishes
    for taken in range(1, len(tasks) + 1):
        view.release("a")
        for _ in range(100):  # event-loop turns, not time
            if len(order) == taken:
                break
            await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    # Then they took it in lane order, critical first
    assert order == list(subjects.LANES)
