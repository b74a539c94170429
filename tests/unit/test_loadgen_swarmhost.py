"""How a swarm host logs its agents in, and how the thousand-agent run sums up (no server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarmhub.credentials import NoFreeSlot, load_or_create
from swarmhub.loadgen.swarmhost import claim_slots, logins
from swarmhub.loadgen.thousand import _split, spread

URL = "nats://127.0.0.1:4222"


def test_each_agent_claims_its_own_slot_and_user(tmp_path: Path) -> None:
    # Given a local cluster's credentials with 5 agent slots
    creds = load_or_create(tmp_path, workers=1, agent_slots=5)
    slots = {u.agent_id: u for u in creds.users if u.role == "agent"}
    # When two hosts claim 3 and 2 of them
    first = claim_slots(3, tmp_path, URL)
    second = claim_slots(2, tmp_path, URL)
    assert first is not None and second is not None
    try:
        ids = [login.agent_id for login, _ in first + second]
        # Then every agent holds a different slot, logged in as that slot's own user
        assert sorted(ids) == sorted(slots)
        for login, _ in first + second:
            user = slots[login.agent_id]
            assert f"{user.name}:{user.password}@127.0.0.1:4222" in login.url
        # And no slot is left for a third
        with pytest.raises(NoFreeSlot, match="Only 0 of 1"):
            claim_slots(1, tmp_path, URL)
    finally:
        for _, fd in first + second:
            os.close(fd)
    # And closing a host's locks frees its slots
    again = claim_slots(5, tmp_path, URL)
    assert again is not None and len(again) == 5
    for _, fd in again:
        os.close(fd)


def test_without_credentials_or_with_a_user_agents_share_the_url(tmp_path: Path) -> None:
    who, locks = logins(URL, 3, tmp_path, "h1")
    assert [w.agent_id for w in who] == ["h1-0", "h1-1", "h1-2"] and not locks
    load_or_create(tmp_path, workers=0, agent_slots=1)
    shared = "nats://worker:secret@127.0.0.1:4222"
    who, locks = logins(shared, 2, tmp_path, "h2")
    assert {w.url for w in who} == {shared} and not locks


def test_agents_split_over_hosts_and_spread_figures() -> None:
    assert _split(1000, 10) == [100] * 10
    assert _split(7, 3) == [3, 2, 2]
    figures = spread({"a": 0, "b": 5, "c": 10})
    assert (figures["min"], figures["median"], figures["max"], figures["none"]) == (0, 5, 10, 1)
