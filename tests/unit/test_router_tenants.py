"""The router's tenant gate: one tenant's share of the slots while others want some (pure)."""

from __future__ import annotations

import random

import pytest

from swarmhub.task_router.tenants import DEFER_BASE, DEFER_MAX, TenantGate, tenant_cap


def test_the_cap_is_a_share_of_the_slots_and_at_least_one() -> None:
    assert tenant_cap(256, 0.75) == 192
    assert tenant_cap(4, 0.5) == 2
    assert tenant_cap(1, 0.1) == 1


def test_a_tenant_alone_may_use_every_slot() -> None:
    # Given a gate of cap 2 and only ann with tasks anywhere
    gate = TenantGate(2)
    gate.waiting = {"ann"}
    # Then ann may take more than the cap: there is no one to share with
    assert all(gate.admit("ann") for _ in range(5))
    assert gate.held == {"ann": 5}


def test_while_tenants_contend_one_at_its_cap_waits_and_others_flow() -> None:
    # Given ann and bob both with tasks in the stream
    gate = TenantGate(2)
    gate.waiting = {"ann", "bob"}
    # When ann takes her two slots
    assert gate.admit("ann") and gate.admit("ann")
    # Then her third waits, while bob's are taken
    assert not gate.admit("ann")
    assert gate.admit("bob")
    # And once one of hers ends, she may take another
    gate.release("ann")
    assert gate.admit("ann")
    assert gate.held == {"ann": 2, "bob": 1}


def test_tenants_held_count_as_contending_without_a_look_at_the_stream() -> None:
    gate = TenantGate(1)
    assert gate.admit("bob")  # bob holds one; nothing is known of the stream yet
    assert gate.admit("ann")
    assert not gate.admit("ann")
    gate.release("bob")  # bob is gone: ann is alone again
    assert not gate.contended and gate.admit("ann")


def test_released_tenants_are_forgotten() -> None:
    gate = TenantGate(3)
    gate.admit("ann")
    gate.release("ann")
    assert gate.held == {}


def test_hand_back_delays_double_to_a_cap_with_jitter() -> None:
    gate = TenantGate(1, rng=random.Random(7))
    delays = [gate.defer(seq=42) for _ in range(8)]
    for count, delay in enumerate(delays, start=1):
        full = min(DEFER_MAX, DEFER_BASE * 2 ** (count - 1))
        assert full / 2 <= delay <= full
    assert max(delays) <= DEFER_MAX


@pytest.mark.parametrize("hand_backs", [0, 1, 19])
def test_hand_backs_do_not_count_as_deliveries(hand_backs: int) -> None:
    # Given a message handed back `hand_backs` times for its tenant's cap
    gate = TenantGate(1)
    for _ in range(hand_backs):
        gate.defer(seq=9)
    # When it is delivered once more and taken, then only that delivery counts
    assert gate.deliveries(seq=9, num_delivered=hand_backs + 1) == 1
    assert gate.deliveries(seq=10, num_delivered=3) == 3  # another message: all count


def test_a_task_on_its_last_delivery_is_taken_over_the_cap() -> None:
    # Given ann at her cap while bob waits, and a message of hers handed back by other routers
    # (this one knows none of those hand-backs) up to one short of the dead-letter limit
    gate = TenantGate(1, max_deliver=20)
    gate.waiting = {"ann", "bob"}
    assert gate.admit("ann", seq=1)
    assert not gate.admit("ann", seq=2, num_delivered=18)
    # Then on its last delivery before the limit it is taken anyway: waiting never dead-letters
    assert gate.admit("ann", seq=2, num_delivered=19)


def test_the_stream_is_looked_at_only_while_a_tenant_is_at_its_cap() -> None:
    gate = TenantGate(2)
    gate.admit("ann")
    assert not gate.at_cap
    gate.admit("ann")
    assert gate.at_cap
    gate.release("ann")
    assert not gate.at_cap
