"""Built-in capability handlers and the registry."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from swarmhub.capabilities import Cancelled, CapabilityRegistry, builtins, cpu_digest
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


async def test_cpu_work_stops_when_its_attempt_is_given_up() -> None:
    # Given a long cpu task running on the only thread of the executor (10 s of hashing)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    cap = builtins.get("cpu")
    assert cap is not None
    attempt = asyncio.create_task(cap.handler({"rounds": 10_000_000}))
    await asyncio.sleep(0.05)
    # When its attempt is cancelled (as its timeout does)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    # Then the thread is free again long before the hashing would have ended
    assert await asyncio.wait_for(loop.run_in_executor(None, lambda: 42), timeout=3) == 42


def test_cpu_digest_stops_between_rounds_when_asked() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled, match="stopped after 0 of"):
        cpu_digest(100_000, "", stop)
