"""Capability handlers: plain `async def` functions registered by name, plus the built-ins."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from swarmhub.errors import NonRetryableError
from swarmhub.subjects import check_token

HandlerFn = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Capability:
    """A named handler; one that opts in to `memoize` has its results kept in the shared cache."""

    name: str
    handler: HandlerFn
    memoize: bool = False


class CapabilityRegistry:
    """Handlers by name."""

    def __init__(self) -> None:
        self._by_name: dict[str, Capability] = {}

    def register(self, name: str, *, memoize: bool = False) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator: register `fn` as the handler of capability `name`."""
        check_token(name, "capability")

        def wrap(fn: HandlerFn) -> HandlerFn:
            if name in self._by_name:
                raise ValueError(f"Capability {name!r} is already registered.")
            self._by_name[name] = Capability(name, fn, memoize)
            return fn

        return wrap

    def get(self, name: str) -> Capability | None:
        """The capability called `name`, if registered."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._by_name)

    def subset(self, names: list[str]) -> CapabilityRegistry:
        """A registry holding only `names`; unknown names raise ValueError."""
        unknown = [n for n in names if n not in self._by_name]
        if unknown:
            raise ValueError(f"Unknown capabilities {unknown}; known ones are {self.names()}.")
        sub = CapabilityRegistry()
        sub._by_name = {n: self._by_name[n] for n in names}
        return sub


builtins = CapabilityRegistry()


def _field(payload: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = payload.get(name, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise NonRetryableError(
            f"Payload field '{name}' must be {kind.__name__}, got {type(value).__name__}."
        )
    return value


@builtins.register("echo")
async def echo(payload: dict[str, Any]) -> Any:
    """Return the payload unchanged."""
    return payload


@builtins.register("sleep")
async def sleep(payload: dict[str, Any]) -> Any:
    """Sleep for `ms` milliseconds (default 100), then return how long it slept."""
    ms = _field(payload, "ms", float, 100.0)
    if not 0 <= ms <= 3_600_000:
        raise NonRetryableError("Payload field 'ms' must be between 0 and 3600000.")
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


class Cancelled(Exception):
    """Raised inside CPU work whose attempt was given up (it timed out or was cancelled)."""


def cpu_digest(rounds: int, seed: str = "", stop: threading.Event | None = None) -> str:
    """A deterministic CPU-bound loop: `rounds` chained SHA-256 hashes; `stop` ends it early."""
    digest = seed.encode()
    for done in range(rounds):
        if stop is not None and done % 4096 == 0 and stop.is_set():
            raise Cancelled(f"cpu work stopped after {done} of {rounds} rounds")
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


# Memoized: a cache round trip is far cheaper than the hashing it saves.
@builtins.register("cpu", memoize=True)
async def cpu(payload: dict[str, Any]) -> Any:
    """Hash `rounds` times (default 1000) and return the digest."""
    rounds = _field(payload, "rounds", int, 1000)
    if not 0 <= rounds <= 10_000_000:
        raise NonRetryableError("Payload field 'rounds' must be between 0 and 10000000.")
    seed = _field(payload, "seed", str, "")
    if rounds <= 2000:
        return {"rounds": rounds, "digest": cpu_digest(rounds, seed)}
    # Off the event loop, so heartbeats and other tasks keep flowing during long hashing; a
    # timed-out or cancelled attempt stops the thread too (cooperatively, between rounds).
    stop = threading.Event()
    try:
        digest = await asyncio.to_thread(cpu_digest, rounds, seed, stop)
    finally:
        stop.set()
    return {"rounds": rounds, "digest": digest}


@builtins.register("fail")
async def fail(payload: dict[str, Any]) -> Any:
    """Always raise: `message` sets the text, `retryable: false` makes it fail at once."""
    message = _field(payload, "message", str, "failure requested by the 'fail' capability")
    if payload.get("retryable", True) is False:
        raise NonRetryableError(message)
    raise RuntimeError(message)
