"""The router's pull ledger: what it has asked the server for and not yet received (fake clock)."""

from __future__ import annotations

from swarmhub.task_router.intake import PullLedger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deliveries_fill_the_oldest_request_first() -> None:
    ledger = PullLedger(Clock())
    ledger.asked(2, 1.0)
    ledger.asked(3, 1.0)
    assert ledger.outstanding == 5
    ledger.delivered()
    ledger.delivered()
    assert ledger.outstanding == 3 and len(ledger.pulls) == 1
    ledger.delivered()
    assert ledger.pulls[0].remaining == 2


def test_an_expired_request_gives_back_what_it_did_not_deliver() -> None:
    ledger = PullLedger(Clock())
    ledger.asked(4, 1.0)
    ledger.asked(4, 1.0)
    ledger.delivered()
    # When the server reports the oldest request over (a 408 with 3 still pending)
    ledger.ended()
    # Then only the newer request is still outstanding
    assert ledger.outstanding == 4 and len(ledger.pulls) == 1


def test_a_request_whose_end_was_lost_is_forgotten_after_its_expiry() -> None:
    clock = Clock()
    ledger = PullLedger(clock)
    ledger.asked(8, 1.0)
    clock.now += 1.5
    ledger.expire(grace=1.0)
    assert ledger.outstanding == 8  # still within grace
    clock.now += 1.0
    ledger.expire(grace=1.0)
    assert ledger.outstanding == 0 and not ledger.pulls


def test_reset_forgets_everything() -> None:
    ledger = PullLedger(Clock())
    ledger.asked(8, 1.0)
    ledger.reset()
    assert ledger.outstanding == 0 and not ledger.pulls
    ledger.delivered()  # a late delivery after a reset does not go negative
    assert ledger.outstanding == 0
