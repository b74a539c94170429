"""An asyncio circuit breaker with resilience4j semantics: sliding window, slow calls, trials."""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Literal, NamedTuple, ParamSpec, TypedDict, TypeVar

import structlog

from swarmhub.errors import ErrorCode, ServiceError

__all__ = [
    "TRANSITIONS",
    "BreakerConfig",
    "BreakerRegistry",
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "Listener",
    "Permit",
    "telemetry_listener",
]

P = ParamSpec("P")
T = TypeVar("T")

_log = structlog.get_logger("swarmhub.breaker")


class CircuitState(IntEnum):
    """Breaker states; the int values are what the breaker-state gauge exports."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2

    @property
    def label(self) -> str:
        """The state as a metric label value: closed, open, half_open."""
        return self.name.lower()


TRANSITIONS: frozenset[tuple[CircuitState, CircuitState]] = frozenset(
    {
        (CircuitState.CLOSED, CircuitState.OPEN),
        (CircuitState.OPEN, CircuitState.HALF_OPEN),
        (CircuitState.HALF_OPEN, CircuitState.OPEN),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED),
    }
)
"""Every (from, to) state change a breaker makes."""

Clock = Callable[[], float]
Listener = Callable[[str, CircuitState, CircuitState], None]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_exception_types(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(item, type) and issubclass(item, BaseException) for item in value
    )


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens, how long it stays open and how it probes for recovery."""

    window_type: Literal["count", "time"] = "count"
    window_size: int = 20
    minimum_calls: int = 10
    failure_rate_threshold: float = 50.0
    slow_call_duration_threshold: float = 10.0
    slow_call_rate_threshold: float = 100.0
    wait_in_open: float = 5.0
    permitted_calls_in_half_open: int = 3
    max_wait_in_half_open: float = 0.0
    record_exceptions: tuple[type[BaseException], ...] = (Exception,)
    ignore_exceptions: tuple[type[BaseException], ...] = ()
    failure_predicate: Callable[[BaseException], bool] | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.window_type not in ("count", "time"):
            problems.append(
                f"Invalid window_type. window_type must be 'count' or 'time', "
                f"not {self.window_type!r}."
            )
        unit = "seconds" if self.window_type == "time" else "calls"
        if not _is_count(self.window_size) or self.window_size < 1:
            problems.append(
                f"Invalid window_size. window_size must be a whole number of {unit} "
                f"of at least 1, not {self.window_size!r}."
            )
        if not _is_count(self.minimum_calls) or self.minimum_calls < 1:
            problems.append(
                f"Invalid minimum_calls. minimum_calls must be a whole number of at least 1, "
                f"not {self.minimum_calls!r}."
            )
        elif (
            self.window_type == "count"
            and _is_count(self.window_size)
            and self.minimum_calls > self.window_size
        ):
            problems.append(
                f"Invalid minimum_calls. A count window of {self.window_size} calls never holds "
                f"{self.minimum_calls} calls, so the breaker could never open; "
                f"use a minimum_calls of at most {self.window_size}."
            )
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= 100:
                problems.append(
                    f"Invalid {name}. {name} is a percentage and must be greater than 0 "
                    f"and at most 100, not {value!r}."
                )
        for name in ("slow_call_duration_threshold", "wait_in_open"):
            value = getattr(self, name)
            if not _is_number(value) or value <= 0:
                problems.append(
                    f"Invalid {name}. {name} must be a finite number of seconds greater than 0, "
                    f"not {value!r}."
                )
        if (
            not _is_count(self.permitted_calls_in_half_open)
            or self.permitted_calls_in_half_open < 1
        ):
            problems.append(
                f"Invalid permitted_calls_in_half_open. permitted_calls_in_half_open must be "
                f"a whole number of at least 1, not {self.permitted_calls_in_half_open!r}."
            )
        if not _is_number(self.max_wait_in_half_open) or self.max_wait_in_half_open < 0:
            problems.append(
                f"Invalid max_wait_in_half_open. max_wait_in_half_open must be a finite number "
                f"of seconds, 0 or more (0 waits for the trial calls forever), "
                f"not {self.max_wait_in_half_open!r}."
            )
        for name in ("record_exceptions", "ignore_exceptions"):
            if not _is_exception_types(getattr(self, name)):
                problems.append(
                    f"Invalid {name}. {name} must be a tuple of exception classes, "
                    f"not {getattr(self, name)!r}."
                )
        if self.failure_predicate is not None and not callable(self.failure_predicate):
            problems.append(
                f"Invalid failure_predicate. failure_predicate must be a callable taking "
                f"the exception and returning a bool, not {self.failure_predicate!r}."
            )
        if problems:
            raise ValueError(" ".join(problems))

    def is_failure(self, exc: BaseException) -> bool:
        """Whether exc counts as a failed call (ignored types win, then the predicate or types)."""
        if isinstance(exc, self.ignore_exceptions):
            return False
        if self.failure_predicate is not None:
            return bool(self.failure_predicate(exc))
        return isinstance(exc, self.record_exceptions)

    def is_ignored(self, exc: BaseException) -> bool:
        """Whether exc is left out of the window (ignored types, cancellation unless recorded)."""
        if isinstance(exc, self.ignore_exceptions):
            return True
        # CancelledError, KeyboardInterrupt and friends say nothing about the callee's health.
        return not isinstance(exc, Exception) and not self.is_failure(exc)


@dataclass(frozen=True, slots=True)
class Permit:
    """Proof a call was let through; hand it back to on_success, on_error or release_permission."""

    epoch: int


class BreakerSnapshot(TypedDict):
    """What a stats endpoint shows about one breaker; rates are percentages of `calls`."""

    name: str
    state: str
    failure_rate: float
    slow_call_rate: float
    calls: int
    failed_calls: int
    slow_calls: int
    not_permitted: int
    retry_after: float


class CircuitOpenError(ServiceError):
    """Raised instead of making a call the breaker does not permit; says when to retry."""

    def __init__(
        self, name: str, state: CircuitState, retry_after: float, *, trials: int = 0
    ) -> None:
        self.breaker_name = name
        self.state = state
        self.retry_after = retry_after
        if state is CircuitState.HALF_OPEN:
            message = (
                f"Circuit {name!r} is HALF_OPEN and its {trials} trial calls are in flight; "
                f"retry in {retry_after:.1f} s."
            )
        else:
            message = f"Circuit {name!r} is {state.name}; retry in {retry_after:.1f} s."
        super().__init__(ErrorCode.CIRCUIT_OPEN, message, retryable=True)


class _Counts(NamedTuple):
    total: int
    failed: int
    slow: int

    @property
    def failure_rate(self) -> float:
        return self.failed * 100.0 / self.total if self.total else 0.0

    @property
    def slow_call_rate(self) -> float:
        return self.slow * 100.0 / self.total if self.total else 0.0


class _Window:
    def record(self, now: float, failed: bool, slow: bool) -> None:
        raise NotImplementedError

    def counts(self, now: float) -> _Counts:
        raise NotImplementedError


class _CountWindow(_Window):
    """The last `size` outcomes."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._outcomes: deque[tuple[bool, bool]] = deque()
        self._failed = 0
        self._slow = 0

    def record(self, now: float, failed: bool, slow: bool) -> None:
        if len(self._outcomes) == self._size:
            old_failed, old_slow = self._outcomes.popleft()
            self._failed -= old_failed
            self._slow -= old_slow
        self._outcomes.append((failed, slow))
        self._failed += failed
        self._slow += slow

    def counts(self, now: float) -> _Counts:
        return _Counts(len(self._outcomes), self._failed, self._slow)


class _TimeWindow(_Window):
    """Outcomes of the last `seconds` seconds, in one-second buckets like resilience4j."""

    def __init__(self, seconds: int) -> None:
        self._seconds = seconds
        self._buckets: deque[list[int]] = deque()  # [second, total, failed, slow]
        self._total = 0
        self._failed = 0
        self._slow = 0

    def _evict(self, now: float) -> None:
        oldest_kept = math.floor(now) - self._seconds + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            _, total, failed, slow = self._buckets.popleft()
            self._total -= total
            self._failed -= failed
            self._slow -= slow

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self._evict(now)
        second = math.floor(now)
        if not self._buckets or self._buckets[-1][0] < second:
            self._buckets.append([second, 0, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self._total += 1
        self._failed += failed
        self._slow += slow

    def counts(self, now: float) -> _Counts:
        self._evict(now)
        return _Counts(self._total, self._failed, self._slow)


@dataclass(frozen=True, slots=True)
class _ActiveCall:
    breaker: CircuitBreaker
    permit: Permit
    started: float


# Calls entered with `async with breaker:`, per task, so one breaker can guard concurrent calls.
_ACTIVE_CALLS: ContextVar[tuple[_ActiveCall, ...]] = ContextVar(
    "swarmhub_breaker_active_calls", default=()
)


class CircuitBreaker:
    """One circuit: CLOSED counts outcomes, OPEN rejects, HALF_OPEN lets a few trial calls through.

    Time-driven transitions (OPEN -> HALF_OPEN after wait_in_open, HALF_OPEN -> OPEN after
    max_wait_in_half_open) happen lazily, whenever the breaker is used or observed.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.name = name
        self.config = config if config is not None else BreakerConfig()
        self._clock = clock
        self._listeners: list[Listener] = list(listeners)
        self._state = CircuitState.CLOSED
        self._epoch = 0
        self._since = clock()
        self._window: _Window = self._closed_window()
        self._trials_issued = 0
        self._not_permitted = 0

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.name}>"

    @property
    def state(self) -> CircuitState:
        """The current state, after applying any transition that is due."""
        self._refresh(self._clock())
        return self._state

    def add_listener(self, listener: Listener) -> None:
        """Call listener(name, old_state, new_state) on every state change."""
        self._listeners.append(listener)

    def acquire_permission(self) -> Permit:
        """Let one call through or raise CircuitOpenError saying when to retry."""
        now = self._clock()
        self._refresh(now)
        if self._state is CircuitState.CLOSED:
            return Permit(self._epoch)
        if (
            self._state is CircuitState.HALF_OPEN
            and self._trials_issued < self.config.permitted_calls_in_half_open
        ):
            self._trials_issued += 1
            return Permit(self._epoch)
        self._not_permitted += 1
        raise CircuitOpenError(
            self.name,
            self._state,
            self._retry_after(now),
            trials=self.config.permitted_calls_in_half_open,
        )

    def release_permission(self, permit: Permit | None = None) -> None:
        """Give back a permission without recording an outcome (call abandoned or ignored)."""
        self._refresh(self._clock())
        if self._is_stale(permit):
            return
        if self._state is CircuitState.HALF_OPEN and self._trials_issued > 0:
            self._trials_issued -= 1

    def on_success(self, duration: float, *, permit: Permit | None = None) -> None:
        """Record a call that returned after `duration` seconds."""
        slow = duration > self.config.slow_call_duration_threshold
        self._record(failed=False, slow=slow, permit=permit)

    def on_error(
        self, duration: float, exc: BaseException, *, permit: Permit | None = None
    ) -> None:
        """Record a call that raised exc; ignored types release, unrecorded types count as ok."""
        if self.config.is_ignored(exc):
            self.release_permission(permit)
            return
        slow = duration > self.config.slow_call_duration_threshold
        self._record(failed=self.config.is_failure(exc), slow=slow, permit=permit)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await fn(*args, **kwargs) under the breaker; put any timeout inside fn to count it."""
        permit = self.acquire_permission()
        started = self._clock()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(self._clock() - started, exc, permit=permit)
            raise
        self.on_success(self._clock() - started, permit=permit)
        return result

    async def __aenter__(self) -> CircuitBreaker:
        permit = self.acquire_permission()
        _ACTIVE_CALLS.set((*_ACTIVE_CALLS.get(), _ActiveCall(self, permit, self._clock())))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        calls = _ACTIVE_CALLS.get()
        for index in range(len(calls) - 1, -1, -1):
            if calls[index].breaker is self:
                active = calls[index]
                _ACTIVE_CALLS.set(calls[:index] + calls[index + 1 :])
                break
        else:
            raise RuntimeError(f"Circuit {self.name!r} was exited without being entered.")
        duration = self._clock() - active.started
        if exc is None:
            self.on_success(duration, permit=active.permit)
        else:
            self.on_error(duration, exc, permit=active.permit)

    def failure_rate(self) -> float:
        """Percentage of failed calls in the current window, judged as the breaker judges it:
        0 until the window holds `minimum_calls` calls."""
        counts = self._window.counts(self._clock())
        return counts.failure_rate if counts.total >= self.config.minimum_calls else 0.0

    def snapshot(self) -> BreakerSnapshot:
        """State, rates over the current window and the count of rejected calls."""
        now = self._clock()
        self._refresh(now)
        counts = self._window.counts(now)
        return BreakerSnapshot(
            name=self.name,
            state=self._state.name,
            failure_rate=counts.failure_rate,
            slow_call_rate=counts.slow_call_rate,
            calls=counts.total,
            failed_calls=counts.failed,
            slow_calls=counts.slow,
            not_permitted=self._not_permitted,
            retry_after=self._retry_after(now),
        )

    def _closed_window(self) -> _Window:
        if self.config.window_type == "time":
            return _TimeWindow(self.config.window_size)
        return _CountWindow(self.config.window_size)

    def _is_stale(self, permit: Permit | None) -> bool:
        return permit is not None and permit.epoch != self._epoch

    def _exceeds(self, counts: _Counts) -> bool:
        return (
            counts.failure_rate >= self.config.failure_rate_threshold
            or counts.slow_call_rate >= self.config.slow_call_rate_threshold
        )

    def _retry_after(self, now: float) -> float:
        elapsed = now - self._since
        if self._state is CircuitState.OPEN:
            return max(0.0, self.config.wait_in_open - elapsed)
        if self._state is CircuitState.HALF_OPEN:
            # Trials usually settle quickly; never hint past the point the state must change.
            hint = self.config.wait_in_open
            if self.config.max_wait_in_half_open > 0:
                hint = min(hint, max(0.0, self.config.max_wait_in_half_open - elapsed))
            return hint
        return 0.0

    def _refresh(self, now: float) -> None:
        elapsed = now - self._since
        if self._state is CircuitState.OPEN and elapsed >= self.config.wait_in_open:
            self._transition(CircuitState.HALF_OPEN, now)
        elif (
            self._state is CircuitState.HALF_OPEN
            and self.config.max_wait_in_half_open > 0
            and elapsed >= self.config.max_wait_in_half_open
        ):
            self._transition(CircuitState.OPEN, now)

    def _record(self, *, failed: bool, slow: bool, permit: Permit | None) -> None:
        now = self._clock()
        self._refresh(now)
        if self._state is CircuitState.HALF_OPEN:
            if self._is_stale(permit):
                return  # a call let through before this half-open period is no trial
            self._window.record(now, failed, slow)
            counts = self._window.counts(now)
            if counts.total >= self.config.permitted_calls_in_half_open:
                failing = self._exceeds(counts)
                self._transition(CircuitState.OPEN if failing else CircuitState.CLOSED, now)
            return
        self._window.record(now, failed, slow)
        if self._state is CircuitState.CLOSED:
            counts = self._window.counts(now)
            if counts.total >= self.config.minimum_calls and self._exceeds(counts):
                self._transition(CircuitState.OPEN, now)

    def _transition(self, new: CircuitState, now: float) -> None:
        old = self._state
        counts = self._window.counts(now)
        self._state = new
        self._epoch += 1
        self._since = now
        if new is CircuitState.CLOSED:
            self._window = self._closed_window()
        elif new is CircuitState.HALF_OPEN:
            self._window = _CountWindow(self.config.permitted_calls_in_half_open)
            self._trials_issued = 0
        # OPEN keeps the window that tripped it, so snapshot() shows why.
        log = _log.warning if new is CircuitState.OPEN else _log.info
        log(
            "circuit_state_changed",
            breaker=self.name,
            from_state=old.name,
            to_state=new.name,
            calls=counts.total,
            failure_rate=round(counts.failure_rate, 1),
            slow_call_rate=round(counts.slow_call_rate, 1),
        )
        for listener in list(self._listeners):
            try:
                listener(self.name, old, new)
            except Exception:
                _log.exception("circuit_listener_failed", breaker=self.name, to_state=new.name)


class BreakerRegistry:
    """Breakers by name, created on first use with one shared config, clock and listeners."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = time.monotonic,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.config = config if config is not None else BreakerConfig()
        self._clock = clock
        self._listeners: list[Listener] = list(listeners)
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called name, created if this is its first use."""
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(
                name, self.config, clock=self._clock, listeners=self._listeners
            )
            self._breakers[name] = breaker
        return breaker

    def remove(self, name: str) -> CircuitBreaker | None:
        """Forget the breaker called name (e.g. its agent left); returns it if it existed."""
        return self._breakers.pop(name, None)

    def add_listener(self, listener: Listener) -> None:
        """Add listener to every breaker, existing and future."""
        self._listeners.append(listener)
        for breaker in self._breakers.values():
            breaker.add_listener(listener)

    def snapshot(self) -> dict[str, BreakerSnapshot]:
        """A snapshot of every breaker, keyed by name."""
        return {name: breaker.snapshot() for name, breaker in sorted(self._breakers.items())}

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def __len__(self) -> int:
        return len(self._breakers)


def telemetry_listener(name: str, old: CircuitState, new: CircuitState) -> None:
    """Count a state change in the metrics and make it a span event (the breaker logs it)."""
    from swarmhub import metrics, tracing

    metrics.BREAKER_STATE.labels(name).set(new.value)
    metrics.BREAKER_TRANSITIONS.labels(old.label, new.label).inc()
    tracing.current_span().add_event(
        "circuit_state_changed", {"breaker": name, "from": old.name, "to": new.name}
    )


def forget_breaker_metric(name: str) -> None:
    """Drop the state series of a breaker that is gone (its agent left), so no alert outlives it."""
    from swarmhub import metrics

    with contextlib.suppress(KeyError):
        metrics.BREAKER_STATE.remove(name)
