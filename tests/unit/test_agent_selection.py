"""The router's agent selection: capability, state, capacity, exclusions and affinity."""

from __future__ import annotations

from swarmhub.schemas import AgentRecord
from task_router.registry import AgentView


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
