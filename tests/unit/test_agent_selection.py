"""The router's agent selection: capability, state, capacity, exclusions and affinity."""

from __future__ import annotations

from swarmhub.schemas import AgentRecord
from swarmhub.task_router.registry import AgentView


def agent(agent_id: str, caps: list[str], capacity: int = 2, state: str = "up") -> AgentRecord:
    return AgentRecord(agent_id=agent_id, capabilities=caps, capacity=capacity, state=state)  # type: ignore[arg-type]


def view_of(*records: AgentRecord) -> AgentView:
    view = AgentView()
    for record in records:
        view.upsert(record)
    return view


async def test_picks_only_agents_with_the_capability() -> None:
    view = view_of(agent("a", ["echo"]), agent("b", ["cpu"]))
    picked = view.pick("cpu", set())
    assert picked is not None and picked.agent_id == "b"
    assert view.pick("sleep", set()) is None


async def test_skips_draining_agents() -> None:
    view = view_of(agent("a", ["echo"], state="draining"))
    assert view.pick("echo", set()) is None
    assert not view.has_capability("echo")


async def test_respects_capacity_and_prefers_the_least_loaded() -> None:
    view = view_of(agent("a", ["echo"], capacity=2), agent("b", ["echo"], capacity=2))
    view.acquire("a")
    picked = view.pick("echo", set())
    assert picked is not None and picked.agent_id == "b"
    view.acquire("b")
    view.acquire("a")
    view.acquire("b")
    assert view.pick("echo", set()) is None
    view.release("a")
    picked = view.pick("echo", set())
    assert picked is not None and picked.agent_id == "a"


async def test_excluded_agents_are_used_only_as_a_last_resort() -> None:
    view = view_of(agent("a", ["echo"]), agent("b", ["echo"]))
    for _ in range(20):
        picked = view.pick("echo", {"a"})
        assert picked is not None and picked.agent_id == "b"
    only = view_of(agent("a", ["echo"]))
    picked = only.pick("echo", {"a"})
    assert picked is not None and picked.agent_id == "a"


async def test_affinity_is_stable_while_agents_live() -> None:
    view = view_of(*(agent(f"a{i}", ["echo"], capacity=100) for i in range(5)))
    first = view.pick("echo", set(), affinity="user-42")
    assert first is not None
    for _ in range(10):
        again = view.pick("echo", set(), affinity="user-42")
        assert again is not None and again.agent_id == first.agent_id


async def test_removed_agents_are_gone() -> None:
    view = view_of(agent("a", ["echo"]))
    view.remove("a")
    assert view.pick("echo", set()) is None


def many(count: int, capacity: int = 1) -> AgentView:
    """A swarm larger than the exhaustive look (SCAN_UP_TO), all offering `echo`."""
    view = AgentView()
    for i in range(count):
        view.upsert(AgentRecord(agent_id=f"a{i:04d}", capabilities=["echo"], capacity=capacity))
    return view


async def test_a_large_swarm_fills_every_free_slot_before_refusing() -> None:
    # Given 300 agents of one slot each (picks look at a few random agents, not all)
    view = many(300)
    used = set()
    for _ in range(300):
        agent = view.pick("echo", set())
        assert agent is not None, "a free slot was left unfound"
        view.acquire(agent.agent_id)
        used.add(agent.agent_id)
    # Then every agent got exactly one attempt, and a full swarm yields none
    assert len(used) == 300
    assert view.pick("echo", set()) is None
    # And a released slot is found again
    view.release("a0123")
    found = view.pick("echo", set())
    assert found is not None and found.agent_id == "a0123"


async def test_a_large_swarm_honours_exclusions_and_breakers() -> None:
    view = many(100, capacity=4)
    tried = {f"a{i:04d}" for i in range(99)}
    # Only one agent is neither tried nor refused: it is the one picked, every time
    for _ in range(20):
        agent = view.pick("echo", tried)
        assert agent is not None and agent.agent_id == "a0099"
    refused = view.pick("echo", set(), allowed=lambda agent_id: agent_id == "a0042")
    assert refused is not None and refused.agent_id == "a0042"
    # A departed agent leaves the free set too
    view.remove("a0042")
    assert view.pick("echo", set(), allowed=lambda agent_id: agent_id == "a0042") is None


async def test_load_spreads_across_a_large_swarm() -> None:
    view = many(200, capacity=8)
    for _ in range(800):  # half the swarm's capacity
        agent = view.pick("echo", set())
        assert agent is not None
        view.acquire(agent.agent_id)
    loads = [view.in_flight.get(f"a{i:04d}", 0) for i in range(200)]
    assert max(loads) <= 8 and min(loads) >= 1, "the power of a few choices keeps load even"


async def test_more_proficient_agents_are_preferred_among_those_with_room() -> None:
    # Given two idle agents of equal capacity, one a quarter as good at `summarize`
    good = AgentRecord(agent_id="good", capabilities=["summarize"], capacity=4)
    weak = AgentRecord(
        agent_id="weak", capabilities=["summarize"], capacity=4, proficiency={"summarize": 0.25}
    )
    view = view_of(good, weak)
    # Then the better one takes the work until it is as loaded as the weak one is weak
    picked = []
    for _ in range(3):
        chosen = view.pick("summarize", set())
        assert chosen is not None
        view.acquire(chosen.agent_id)
        picked.append(chosen.agent_id)
    assert picked == ["good", "good", "good"]
    # and the weak one still gets work once the better one is full
    view.acquire("good")
    chosen = view.pick("summarize", set())
    assert chosen is not None and chosen.agent_id == "weak"


async def test_an_agent_nobody_answers_as_gets_no_work_until_its_suspension_ends() -> None:
    now = [100.0]
    view = AgentView(clock=lambda: now[0])
    view.upsert(agent("a", ["echo"]))
    view.upsert(agent("b", ["echo"]))
    # Given "a" did not answer a dispatch (killed, its registry entry not yet expired)
    view.suspend("a", seconds=2.0)
    # Then only "b" is picked, and a task pinned to "a" waits
    assert {view.pick("echo", set()).agent_id for _ in range(20)} == {"b"}  # type: ignore[union-attr]
    assert view.pinned("a", "echo") is None
    # and a resume that comes early changes nothing
    now[0] += 1.0
    view._resume("a")
    assert view.pinned("a", "echo") is None
    # When the suspension ends with "a" still registered, it gets work again
    now[0] += 1.5
    view._resume("a")
    assert view.pinned("a", "echo") is not None
    assert "a" in {view.pick("echo", {"b"}).agent_id for _ in range(5)}  # type: ignore[union-attr]


async def test_a_suspended_agent_that_expires_is_forgotten() -> None:
    view = view_of(agent("a", ["echo"]))
    view.suspend("a")
    view.remove("a")
    assert "a" not in view.suspended and view.pick("echo", set()) is None


async def test_an_agent_failing_lately_gets_less_work_but_still_some() -> None:
    view = view_of(agent("good", ["echo"], capacity=8), agent("flaky", ["echo"], capacity=8))

    def penalty(agent_id: str) -> float:
        return 4.0 if agent_id == "flaky" else 1.0  # every recent call of "flaky" failed

    picks = []
    for _ in range(10):
        picked = view.pick("echo", set(), penalty=penalty)
        assert picked is not None
        picks.append(picked.agent_id)
        view.acquire(picked.agent_id)
    # The healthy agent takes work until it is 4x as loaded as the failing one...
    assert picks.count("good") == 8
    # ...and the failing one still gets work (it is not shut out while its breaker is closed).
    assert picks.count("flaky") == 2


async def test_one_capability_may_hold_only_its_share_of_the_slots() -> None:
    view = view_of(agent("a", ["sleep", "echo"], capacity=4), agent("b", ["sleep"], capacity=6))
    # 10 slots offer sleep: at a share of 0.9, 9 sleeps may run at once
    for _ in range(8):
        view.acquire("b" if view.in_flight.get("b", 0) < 6 else "a", "sleep")
    assert not view.capability_full("sleep", 0.9)
    view.acquire("a", "sleep")
    assert view.capability_full("sleep", 0.9)
    # echo, offered by "a" alone (4 slots, so 3 at 0.9), is not held back by sleep's attempts
    assert not view.capability_full("echo", 0.9)
    # a share of 1 reserves nothing; one sleep ending makes room again
    assert not view.capability_full("sleep", 1.0)
    view.release("a", "sleep")
    assert not view.capability_full("sleep", 0.9)


async def test_a_capability_with_one_slot_may_still_use_it() -> None:
    view = view_of(agent("a", ["cpu"], capacity=1))
    assert not view.capability_full("cpu", 0.5)
    view.acquire("a", "cpu")
    assert view.capability_full("cpu", 0.5)


async def test_slots_of_agents_that_leave_no_longer_count() -> None:
    view = view_of(agent("a", ["echo"], capacity=4), agent("b", ["echo"], capacity=4))
    assert view.capacity_of["echo"] == 8
    view.remove("b")
    assert view.capacity_of["echo"] == 4
    view.upsert(agent("a", ["echo"], capacity=4, state="draining"))
    assert "echo" not in view.capacity_of
