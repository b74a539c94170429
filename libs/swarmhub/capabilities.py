"""The capability registry (handlers by name, with their options), plus the built-ins."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from swarmhub.errors import NonRetryableError
from swarmhub.handlers import HandlerFn, as_handler, current_runners
from swarmhub.subjects import check_token

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Capability:
    """A named handler and its options (see `CapabilityRegistry.register`)."""

    name: str
    handler: HandlerFn
    memoize: bool = False
    timeout: float | None = None
    max_attempts: int | None = None
    concurrency: int | None = None
    proficiency: float = 1.0
    isolate: bool = False


def _check_options(
    name: str,
    timeout: float | None,
    max_attempts: int | None,
    concurrency: int | None,
    proficiency: float = 1.0,
) -> None:
    """Refuse options that cannot work, naming the capability."""
    if timeout is not None and not 0 < timeout <= 3600:
        raise ValueError(f"Capability {name!r}: timeout must be in (0, 3600] seconds.")
    if max_attempts is not None and not 1 <= max_attempts <= 20:
        raise ValueError(f"Capability {name!r}: max_attempts must be between 1 and 20.")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"Capability {name!r}: concurrency must be at least 1.")
    if not 0 < proficiency <= 1:
        raise ValueError(f"Capability {name!r}: proficiency must be in (0, 1].")


class CapabilityRegistry:
    """Handlers by name."""

    def __init__(self, *, check_output: bool = True) -> None:
        self._by_name: dict[str, Capability] = {}
        self._check_output = check_output

    def register(
        self,
        name: str | None = None,
        *,
        memoize: bool = False,
        timeout: float | None = None,
        max_attempts: int | None = None,
        concurrency: int | None = None,
        proficiency: float = 1.0,
        isolate: bool = False,
    ) -> Callable[[F], F]:
        """Decorator: register a function as capability `name` (default: its own name).

        `timeout` caps each attempt's timeout (seconds), `max_attempts` caps the task's attempts,
        `concurrency` caps runs at once in one worker, `memoize` keeps results in the cache,
        `proficiency` (0, 1] tells routers how good this agent is at it (1: as good as any),
        `isolate` runs each call of a sync function in a child process killed when it is given up.
        """
        if name is not None:
            check_token(name, "capability")

        def wrap(fn: F) -> F:
            cap_name = name or check_token(getattr(fn, "__name__", ""), "capability")
            _check_options(cap_name, timeout, max_attempts, concurrency, proficiency)
            handler = as_handler(fn, check_output=self._check_output, isolate=isolate)
            self.add(
                Capability(
                    cap_name,
                    handler,
                    memoize,
                    timeout,
                    max_attempts,
                    concurrency,
                    proficiency,
                    isolate,
                )
            )
            return fn

        return wrap

    def add(self, capability: Capability) -> None:
        """Add one capability; a name already taken raises ValueError."""
        if capability.name in self._by_name:
            raise ValueError(f"Capability {capability.name!r} is already registered.")
        self._by_name[capability.name] = capability

    def get(self, name: str) -> Capability | None:
        """The capability called `name`, if registered."""
        return self._by_name.get(name)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._by_name)

    def capabilities(self) -> list[Capability]:
        """All registered capabilities, by name."""
        return [self._by_name[name] for name in self.names()]

    def __len__(self) -> int:
        return len(self._by_name)

    def proficiency(self) -> dict[str, float]:
        """Proficiency by capability, for those below 1 (what an agent announces)."""
        return {c.name: c.proficiency for c in self.capabilities() if c.proficiency != 1.0}

    def subset(self, names: list[str]) -> CapabilityRegistry:
        """A registry holding only `names`; unknown names raise ValueError."""
        unknown = [n for n in names if n not in self._by_name]
        if unknown:
            raise ValueError(f"Unknown capabilities {unknown}; known ones are {self.names()}.")
        sub = CapabilityRegistry(check_output=self._check_output)
        sub._by_name = {n: self._by_name[n] for n in names}
        return sub


# Trusted code: their outputs are plain values, so they skip the per-task output check.
builtins = CapabilityRegistry(check_output=False)


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
        digest = await current_runners().in_thread(cpu_digest, rounds, seed, stop)
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
