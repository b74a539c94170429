"""Wire schemas: defaults, bounds and validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from swarmhub.schemas import AgentRegistration, Heartbeat, Priority, Task


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
