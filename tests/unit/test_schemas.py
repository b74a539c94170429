"""Wire schemas: defaults, bounds and validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from swarmhub.schemas import MAX_PAYLOAD_DEPTH, AgentRegistration, Heartbeat, Priority, Task


def test_task_defaults_are_sane() -> None:
    task = Task(capability="echo")
    assert len(task.id) == 32
    assert task.priority is Priority.NORMAL
    assert task.max_attempts == 3
    assert task.deadline is None
    assert task.created_at > 0


@pytest.mark.parametrize("capability", ["", "has space", "dots.are.tokens", "a>b", "*"])
def test_capability_must_be_one_subject_token(capability: str) -> None:
    with pytest.raises(ValidationError):
        Task(capability=capability)


@pytest.mark.parametrize(
    "field,value", [("max_attempts", 0), ("max_attempts", 21), ("attempt_timeout", 0)]
)
def test_task_bounds(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Task(capability="echo", **{field: value})


def test_priority_accepts_names() -> None:
    assert Task(capability="echo", priority="critical").priority is Priority.CRITICAL  # type: ignore[arg-type]


def test_registration_needs_capabilities_and_capacity() -> None:
    with pytest.raises(ValidationError):
        AgentRegistration(agent_id="a1", capabilities=[], capacity=1)
    with pytest.raises(ValidationError):
        AgentRegistration(agent_id="a1", capabilities=["echo"], capacity=0)


def test_messages_are_immutable() -> None:
    beat = Heartbeat(agent_id="a1", capabilities=["echo"], capacity=2, in_flight=0)
    with pytest.raises(ValidationError):
        beat.in_flight = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("deadline", float("nan"), "finite number"),
        ("deadline", float("inf"), "finite number"),
        ("created_at", 1_795_000_000_000.0, "looks like milliseconds"),
        ("not_before", 12.0, "seconds since the Unix epoch"),
        ("attempt", 2**63 - 1, "less than or equal to 20"),
        ("attempt_timeout", float("nan"), "finite number"),
        ("tried_agents", ["a b"], "tried_agents.0"),
    ],
)
def test_hostile_task_fields_are_refused_by_name(field: str, value: object, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        Task(capability="echo", **{field: value})
    assert words in str(info.value)


def test_payload_nesting_is_bounded() -> None:
    deep: dict[str, object] = {}
    cursor = deep
    for _ in range(MAX_PAYLOAD_DEPTH + 1):
        cursor["a"] = {}
        cursor = cursor["a"]  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="nests deeper than"):
        Task(capability="echo", payload=deep)
    Task(capability="echo", payload={"a": [[{"b": [1, 2]}]]})
