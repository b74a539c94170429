"""The router's status figures: P95 over the last minute only."""

from __future__ import annotations

from swarmhub.task_router.figures import RecentLatencies


class FakeClock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_p95_covers_only_the_window() -> None:
    clock = FakeClock()
    recent = RecentLatencies(window=60, clock=clock)
    assert recent.p95() is None
    for ms in range(1, 101):
        recent.add(float(ms))
    assert recent.p95() == 95.0
    clock.now += 30
    recent.add(1.0)
    clock.now += 31  # the first hundred are older than a minute now
    assert recent.p95() == 1.0
    clock.now += 61
    assert recent.p95() is None, "an idle hub shows no latency, not the last busy minute's"
