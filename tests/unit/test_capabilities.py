"""Built-in capability handlers and the registry."""

from __future__ import annotations

import pytest

from swarmhub.capabilities import CapabilityRegistry, builtins, cpu_digest
from swarmhub.errors import NonRetryableError


async def test_builtins_are_registered() -> None:
    assert builtins.names() == ["cpu", "echo", "fail", "sleep"]


async def test_echo_returns_the_payload() -> None:
    cap = builtins.get("echo")
    assert cap is not None
    assert await cap.handler({"text": "hi"}) == {"text": "hi"}


async def test_cpu_is_deterministic() -> None:
    cap = builtins.get("cpu")
    assert cap is not None and cap.memoize
    out = await cap.handler({"rounds": 10})
    assert out == {"rounds": 10, "digest": cpu_digest(10)}
    assert cpu_digest(10) != cpu_digest(11)


async def test_sleep_validates_its_field() -> None:
    cap = builtins.get("sleep")
    assert cap is not None
    assert await cap.handler({"ms": 1}) == {"slept_ms": 1.0}
    with pytest.raises(NonRetryableError, match="'ms' must be float"):
        await cap.handler({"ms": "long"})


async def test_fail_raises_retryable_or_not() -> None:
    cap = builtins.get("fail")
    assert cap is not None
    with pytest.raises(RuntimeError, match="boom"):
        await cap.handler({"message": "boom"})
    with pytest.raises(NonRetryableError):
        await cap.handler({"retryable": False})


def test_registry_rejects_duplicates_and_bad_names() -> None:
    registry = CapabilityRegistry()

    @registry.register("mine")
    async def mine(payload: dict[str, object]) -> object:
        return payload

    with pytest.raises(ValueError, match="already registered"):
        registry.register("mine")(mine)
    with pytest.raises(ValueError, match="must contain only"):
        registry.register("bad name")


def test_subset_names_unknown_capabilities() -> None:
    with pytest.raises(ValueError, match="Unknown capabilities"):
        builtins.subset(["echo", "nope"])
    assert builtins.subset(["echo"]).names() == ["echo"]
