"""The circuit breaker, driven by a fake clock: no sleeps, every transition deterministic."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from swarmhub.breaker import (
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
)
from swarmhub.errors import ErrorCode, ServiceError


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    """A failure of the guarded call."""


class NotMyFault(Exception):
    """An error the breaker is told to ignore."""


Transition = tuple[str, CircuitState, CircuitState]


def make(
    clock: FakeClock, transitions: list[Transition] | None = None, **overrides: Any
) -> CircuitBreaker:
    settings: dict[str, Any] = {
        "window_type": "count",
        "window_size": 10,
        "minimum_calls": 4,
        "failure_rate_threshold": 50,
        "slow_call_duration_threshold": 1.0,
        "slow_call_rate_threshold": 100,
        "wait_in_open": 5.0,
        "permitted_calls_in_half_open": 2,
        "max_wait_in_half_open": 0.0,
    }
    settings.update(overrides)
    listeners = [lambda *t: transitions.append(t)] if transitions is not None else []
    return CircuitBreaker("agent-abc", BreakerConfig(**settings), clock=clock, listeners=listeners)


def fail(breaker: CircuitBreaker, times: int = 1, duration: float = 0.01) -> None:
    for _ in range(times):
        permit = breaker.acquire_permission()
        breaker.on_error(duration, Boom("down"), permit=permit)


def succeed(breaker: CircuitBreaker, times: int = 1, duration: float = 0.01) -> None:
    for _ in range(times):
        permit = breaker.acquire_permission()
        breaker.on_success(duration, permit=permit)


def state(breaker: CircuitBreaker) -> CircuitState:
    """Read the state through a call, so mypy does not narrow it across transitions."""
    return breaker.state


def trip(breaker: CircuitBreaker) -> None:
    fail(breaker, breaker.config.minimum_calls)
    assert state(breaker) is CircuitState.OPEN


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_stays_closed_below_minimum_calls(clock: FakeClock) -> None:
    # Given a breaker that needs 4 calls before judging
    breaker = make(clock)
    # When 3 calls all fail
    fail(breaker, 3)
    # Then it stays closed and still lets calls through
    assert state(breaker) is CircuitState.CLOSED
    breaker.acquire_permission()
    assert breaker.snapshot()["failure_rate"] == 100.0


def test_opens_when_failure_rate_reaches_threshold(clock: FakeClock) -> None:
    # Given 2 successes and 1 failure (33 %)
    breaker = make(clock)
    succeed(breaker, 2)
    fail(breaker)
    assert state(breaker) is CircuitState.CLOSED
    # When the 4th call fails, the rate is exactly the 50 % threshold
    fail(breaker)
    # Then the breaker opens
    assert state(breaker) is CircuitState.OPEN
    snap = breaker.snapshot()
    assert (snap["calls"], snap["failed_calls"], snap["failure_rate"]) == (4, 2, 50.0)


def test_stays_closed_just_below_failure_threshold(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=5)
    succeed(breaker, 3)
    fail(breaker, 2)  # 40 %
    assert state(breaker) is CircuitState.CLOSED


def test_failure_rate_reports_the_closed_window(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=5)
    fail(breaker, 1)
    assert breaker.failure_rate() == 0.0  # too few calls to judge, as for opening
    succeed(breaker, 3)
    assert breaker.failure_rate() == 0.0
    succeed(breaker, 1)
    assert breaker.failure_rate() == 20.0
    assert state(breaker) is CircuitState.CLOSED


def test_count_window_forgets_the_oldest_outcomes(clock: FakeClock) -> None:
    # Given a 4-call window with 1 failure in it
    breaker = make(clock, window_size=4, minimum_calls=4)
    fail(breaker)
    succeed(breaker, 3)
    # When 4 more successes push it out, then 1 failure comes in (1 of 4 = 25 %)
    succeed(breaker, 4)
    fail(breaker)
    # Then only the last 4 outcomes count
    snap = breaker.snapshot()
    assert (snap["calls"], snap["failed_calls"]) == (4, 1)
    assert state(breaker) is CircuitState.CLOSED


def test_opens_on_slow_call_rate(clock: FakeClock) -> None:
    # Given slow calls open the breaker at 75 %
    breaker = make(clock, slow_call_rate_threshold=75)
    # When 3 of 4 successful calls take longer than 1 s
    succeed(breaker, 1, duration=0.2)
    succeed(breaker, 2, duration=1.5)
    assert state(breaker) is CircuitState.CLOSED
    succeed(breaker, 1, duration=3.0)
    # Then it opens although no call failed
    assert state(breaker) is CircuitState.OPEN
    snap = breaker.snapshot()
    assert (snap["failure_rate"], snap["slow_call_rate"]) == (0.0, 75.0)


def test_call_exactly_at_slow_threshold_is_not_slow(clock: FakeClock) -> None:
    breaker = make(clock, slow_call_rate_threshold=50)
    succeed(breaker, 4, duration=1.0)
    assert breaker.snapshot()["slow_calls"] == 0


async def test_call_measures_duration_with_the_injected_clock(clock: FakeClock) -> None:
    breaker = make(clock, slow_call_rate_threshold=50, minimum_calls=1)

    async def slow_work(seconds: float) -> str:
        clock.advance(seconds)
        return "done"

    assert await breaker.call(slow_work, 2.0) == "done"
    assert state(breaker) is CircuitState.OPEN
    assert breaker.snapshot()["slow_calls"] == 1


def test_rejects_with_retry_after_that_counts_down(clock: FakeClock) -> None:
    # Given an open breaker
    breaker = make(clock)
    trip(breaker)
    # When a call is attempted right away
    with pytest.raises(CircuitOpenError) as first:
        breaker.acquire_permission()
    # Then it is rejected with the full wait, as a retryable ServiceError
    err = first.value
    assert isinstance(err, ServiceError)
    assert err.code is ErrorCode.CIRCUIT_OPEN
    assert err.retryable is True
    assert err.status == 503
    assert err.retry_after == pytest.approx(5.0)
    assert err.message == "Circuit 'agent-abc' is OPEN; retry in 5.0 s."
    # When 3.2 s pass, Then the hint shrinks accordingly
    clock.advance(3.2)
    with pytest.raises(CircuitOpenError) as later:
        breaker.acquire_permission()
    assert later.value.retry_after == pytest.approx(1.8)
    assert later.value.message == "Circuit 'agent-abc' is OPEN; retry in 1.8 s."
    assert breaker.snapshot()["not_permitted"] == 2


async def test_open_breaker_rejects_async_with_and_call(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker)
    ran = False

    async def work() -> None:
        nonlocal ran
        ran = True

    with pytest.raises(CircuitOpenError):
        async with breaker:
            ran = True
    with pytest.raises(CircuitOpenError):
        await breaker.call(work)
    assert ran is False


def test_goes_half_open_after_wait(clock: FakeClock) -> None:
    # Given an open breaker
    breaker = make(clock)
    trip(breaker)
    # When just under the wait has passed, Then it is still open
    clock.advance(4.999)
    assert state(breaker) is CircuitState.OPEN
    # When the wait is over, Then it is half-open and lets a trial through
    clock.advance(0.001)
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.acquire_permission()
    assert breaker.snapshot()["calls"] == 0


def test_closes_after_successful_trials(clock: FakeClock) -> None:
    # Given a half-open breaker with 2 trials
    breaker = make(clock)
    trip(breaker)
    clock.advance(5)
    # When both trials succeed
    succeed(breaker)
    assert state(breaker) is CircuitState.HALF_OPEN
    succeed(breaker)
    # Then it closes with a fresh window
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.snapshot()["calls"] == 0
    fail(breaker, 3)
    assert state(breaker) is CircuitState.CLOSED


def test_reopens_after_failed_trial(clock: FakeClock) -> None:
    # Given a half-open breaker with 2 trials
    breaker = make(clock)
    trip(breaker)
    clock.advance(5)
    # When one trial of two fails (50 % >= threshold)
    succeed(breaker)
    fail(breaker)
    # Then it opens again and waits the full wait_in_open anew
    assert state(breaker) is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as rejected:
        breaker.acquire_permission()
    assert rejected.value.retry_after == pytest.approx(5.0)
    clock.advance(5)
    assert state(breaker) is CircuitState.HALF_OPEN


async def test_half_open_permits_only_n_concurrent_trials(clock: FakeClock) -> None:
    # Given a half-open breaker with 2 trials
    breaker = make(clock)
    trip(breaker)
    clock.advance(5)
    gate = asyncio.Event()
    entered = [asyncio.Event(), asyncio.Event()]

    async def trial(inside: asyncio.Event) -> None:
        async with breaker:
            inside.set()
            await gate.wait()

    # When 2 trials are in flight
    tasks = [asyncio.create_task(trial(inside)) for inside in entered]
    for inside in entered:
        await inside.wait()
    # Then a 3rd call is rejected while they run
    with pytest.raises(CircuitOpenError) as rejected:
        async with breaker:
            pytest.fail("a third trial must not run")
    assert rejected.value.state is CircuitState.HALF_OPEN
    assert "2 trial calls are in flight" in rejected.value.message
    assert state(breaker) is CircuitState.HALF_OPEN
    # When both trials succeed, Then the breaker closes
    gate.set()
    await asyncio.gather(*tasks)
    assert state(breaker) is CircuitState.CLOSED


async def test_cancelled_trial_gives_its_permission_back(clock: FakeClock) -> None:
    breaker = make(clock, permitted_calls_in_half_open=1)
    trip(breaker)
    clock.advance(5)
    started = asyncio.Event()

    async def hang() -> None:
        async with breaker:
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await started.wait()
    with pytest.raises(CircuitOpenError):
        breaker.acquire_permission()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The cancellation says nothing about health: the trial slot is free again, nothing recorded.
    assert state(breaker) is CircuitState.HALF_OPEN
    assert breaker.snapshot()["calls"] == 0
    succeed(breaker)
    assert state(breaker) is CircuitState.CLOSED


def test_max_wait_in_half_open_reopens(clock: FakeClock) -> None:
    # Given a half-open breaker that waits at most 2 s for its trials
    transitions: list[Transition] = []
    breaker = make(clock, transitions, max_wait_in_half_open=2.0)
    trip(breaker)
    clock.advance(5)
    permit = breaker.acquire_permission()
    # When 1 s passes, Then it is still waiting, with a hint capped by the remaining max wait
    clock.advance(1)
    assert state(breaker) is CircuitState.HALF_OPEN
    breaker.acquire_permission()
    with pytest.raises(CircuitOpenError) as rejected:
        breaker.acquire_permission()
    assert rejected.value.retry_after == pytest.approx(1.0)
    # When the max wait passes without all trials done, Then it opens again
    clock.advance(1)
    assert state(breaker) is CircuitState.OPEN
    # And a late trial result does not revive the old half-open period
    breaker.on_success(0.01, permit=permit)
    assert state(breaker) is CircuitState.OPEN
    assert [new for _, _, new in transitions] == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.OPEN,
    ]


def test_zero_max_wait_waits_forever_for_trials(clock: FakeClock) -> None:
    breaker = make(clock)
    trip(breaker)
    clock.advance(5)
    breaker.acquire_permission()
    clock.advance(10_000)
    assert state(breaker) is CircuitState.HALF_OPEN


def test_outcome_from_before_half_open_is_not_a_trial(clock: FakeClock) -> None:
    # Given a call let through while closed, still running when the breaker opens
    breaker = make(clock)
    old_permit = breaker.acquire_permission()
    trip(breaker)
    clock.advance(5)
    assert state(breaker) is CircuitState.HALF_OPEN
    # When it finally fails during the half-open period
    breaker.on_error(0.01, Boom("late"), permit=old_permit)
    # Then it is not counted as a trial
    assert breaker.snapshot()["calls"] == 0
    succeed(breaker, 2)
    assert state(breaker) is CircuitState.CLOSED


def test_time_window_drops_old_outcomes(clock: FakeClock) -> None:
    # Given a 10-second window and 3 failures
    breaker = make(clock, window_type="time", window_size=10, minimum_calls=4)
    fail(breaker, 3)
    assert breaker.snapshot()["calls"] == 3
    # When 10 s pass, Then they have left the window
    clock.advance(10)
    assert breaker.snapshot()["calls"] == 0
    # And one more failure does not reach minimum_calls
    fail(breaker)
    assert state(breaker) is CircuitState.CLOSED


def test_time_window_keeps_recent_outcomes(clock: FakeClock) -> None:
    breaker = make(clock, window_type="time", window_size=10, minimum_calls=4)
    fail(breaker, 2)
    clock.advance(6)
    succeed(breaker)
    clock.advance(3)
    assert breaker.snapshot()["calls"] == 3
    fail(breaker)  # 3 of 4 within 10 s
    assert state(breaker) is CircuitState.OPEN
    clock.advance(1)  # the first two age out, but OPEN keeps the window that tripped it
    assert state(breaker) is CircuitState.OPEN


def test_time_window_opens_on_many_calls_in_window(clock: FakeClock) -> None:
    breaker = make(clock, window_type="time", window_size=2, minimum_calls=20)
    for _ in range(10):
        succeed(breaker)
        fail(breaker)
        clock.advance(0.05)
    assert state(breaker) is CircuitState.OPEN


def test_listeners_receive_every_transition(clock: FakeClock) -> None:
    # Given a listener
    transitions: list[Transition] = []
    breaker = make(clock, transitions)
    # When the breaker opens, probes, fails, probes again and recovers
    trip(breaker)
    clock.advance(5)
    fail(breaker)
    succeed(breaker)
    clock.advance(5)
    succeed(breaker, 2)
    # Then each change is reported with the breaker's name
    closed, opened, half = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
    assert transitions == [
        ("agent-abc", closed, opened),
        ("agent-abc", opened, half),
        ("agent-abc", half, opened),
        ("agent-abc", opened, half),
        ("agent-abc", half, closed),
    ]


def test_failing_listener_does_not_break_the_breaker(clock: FakeClock) -> None:
    seen: list[CircuitState] = []

    def broken(name: str, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    breaker = make(clock)
    breaker.add_listener(broken)
    breaker.add_listener(lambda name, old, new: seen.append(new))
    trip(breaker)
    assert seen == [CircuitState.OPEN]


def test_state_values_fit_a_gauge() -> None:
    assert [s.value for s in CircuitState] == [0, 1, 2]
    assert [s.name for s in CircuitState] == ["CLOSED", "OPEN", "HALF_OPEN"]


async def test_ignored_exceptions_do_not_count(clock: FakeClock) -> None:
    # Given a breaker that ignores NotMyFault
    breaker = make(clock, ignore_exceptions=(NotMyFault,))

    async def bad_request() -> None:
        raise NotMyFault("caller sent garbage")

    # When many calls raise it
    for _ in range(10):
        with pytest.raises(NotMyFault):
            await breaker.call(bad_request)
    # Then nothing was recorded and the breaker stays closed
    assert breaker.snapshot()["calls"] == 0
    assert state(breaker) is CircuitState.CLOSED


async def test_ignored_exception_in_half_open_frees_the_trial(clock: FakeClock) -> None:
    breaker = make(clock, ignore_exceptions=(NotMyFault,), permitted_calls_in_half_open=1)
    trip(breaker)
    clock.advance(5)
    with pytest.raises(NotMyFault):
        async with breaker:
            raise NotMyFault("not the agent's fault")
    assert state(breaker) is CircuitState.HALF_OPEN
    async with breaker:
        pass
    assert state(breaker) is CircuitState.CLOSED


def test_unrecorded_exception_counts_as_success(clock: FakeClock) -> None:
    # resilience4j: errors neither recorded nor ignored count as successful calls
    breaker = make(clock, record_exceptions=(Boom,))
    for _ in range(4):
        permit = breaker.acquire_permission()
        breaker.on_error(0.01, KeyError("missing"), permit=permit)
    snap = breaker.snapshot()
    assert (snap["calls"], snap["failed_calls"], snap["state"]) == (4, 0, "CLOSED")


def test_failure_predicate_decides(clock: FakeClock) -> None:
    def only_unavailable(exc: BaseException) -> bool:
        return isinstance(exc, ServiceError) and exc.code is ErrorCode.UNAVAILABLE

    breaker = make(clock, failure_predicate=only_unavailable)
    for code in (ErrorCode.BAD_REQUEST, ErrorCode.UNAVAILABLE) * 2:
        permit = breaker.acquire_permission()
        breaker.on_error(0.01, ServiceError(code, "x"), permit=permit)
    assert breaker.snapshot()["failed_calls"] == 2
    assert state(breaker) is CircuitState.OPEN


def test_callers_that_measure_themselves_may_omit_the_permit(clock: FakeClock) -> None:
    breaker = make(clock)
    for _ in range(4):
        breaker.acquire_permission()
        breaker.on_error(0.3, Boom("timeout"))
    assert state(breaker) is CircuitState.OPEN


def test_snapshot_has_stable_keys(clock: FakeClock) -> None:
    breaker = make(clock)
    succeed(breaker)
    fail(breaker)
    assert breaker.snapshot() == {
        "name": "agent-abc",
        "state": "CLOSED",
        "failure_rate": 50.0,
        "slow_call_rate": 0.0,
        "calls": 2,
        "failed_calls": 1,
        "slow_calls": 0,
        "not_permitted": 0,
        "retry_after": 0.0,
    }


def test_registry_creates_breakers_lazily_and_shares_config(clock: FakeClock) -> None:
    # Given a registry with a shared config and listener
    transitions: list[Transition] = []
    config = BreakerConfig(window_size=4, minimum_calls=2)
    registry = BreakerRegistry(config, clock=clock, listeners=[lambda *t: transitions.append(t)])
    assert len(registry) == 0
    # When two names are used
    a = registry.get("agent-a")
    b = registry.get("agent-b")
    # Then each name has one breaker with the shared config
    assert registry.get("agent-a") is a
    assert a.config is config and b.config is config
    assert "agent-a" in registry and "agent-c" not in registry
    # And the shared listener hears from any of them, as does one added later
    late: list[str] = []
    registry.add_listener(lambda name, old, new: late.append(name))
    fail(b, 2)
    assert transitions == [("agent-b", CircuitState.CLOSED, CircuitState.OPEN)]
    assert late == ["agent-b"]
    snap = registry.snapshot()
    assert list(snap) == ["agent-a", "agent-b"]
    assert snap["agent-b"]["state"] == "OPEN"
    assert snap["agent-a"]["state"] == "CLOSED"
    # When a breaker is removed, Then the next get starts afresh
    assert registry.remove("agent-b") is b
    assert registry.remove("agent-b") is None
    assert registry.get("agent-b").state is CircuitState.CLOSED


def test_default_config_is_valid() -> None:
    config = BreakerConfig()
    assert config.window_type == "count"
    assert config.is_failure(Boom()) and not config.is_ignored(Boom())
    assert config.is_ignored(asyncio.CancelledError())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_type": "sliding"}, "window_type must be 'count' or 'time', not 'sliding'."),
        ({"window_size": 0}, "window_size must be a whole number of calls of at least 1"),
        (
            {"window_type": "time", "window_size": 2.5},
            "window_size must be a whole number of seconds of at least 1, not 2.5.",
        ),
        ({"minimum_calls": 0}, "minimum_calls must be a whole number of at least 1"),
        (
            {"window_size": 5, "minimum_calls": 10},
            "A count window of 5 calls never holds 10 calls, so the breaker could never open",
        ),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold is a percentage"),
        ({"slow_call_rate_threshold": 150}, "slow_call_rate_threshold is a percentage"),
        ({"slow_call_duration_threshold": -1}, "slow_call_duration_threshold must be a finite"),
        ({"wait_in_open": float("nan")}, "wait_in_open must be a finite number of seconds"),
        ({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open must be a whole"),
        ({"max_wait_in_half_open": -0.5}, "max_wait_in_half_open must be a finite number"),
        ({"ignore_exceptions": (ValueError, "oops")}, "ignore_exceptions must be a tuple"),
        ({"failure_predicate": 42}, "failure_predicate must be a callable"),
    ],
)
def test_invalid_config_raises_a_clear_message(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        BreakerConfig(**overrides)
    assert message in str(raised.value)
    assert str(raised.value).startswith("Invalid ")
    assert str(raised.value).endswith(".")


def test_invalid_config_lists_every_problem() -> None:
    with pytest.raises(ValueError) as raised:
        BreakerConfig(window_size=0, wait_in_open=0)
    text = str(raised.value)
    assert "Invalid window_size." in text and "Invalid wait_in_open." in text
