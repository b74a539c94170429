"""Settings come from SWARMHUB_* variables and are validated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from swarmhub.config import BusSettings, RouterSettings, TelemetrySettings, WorkerSettings
from swarmhub.credentials import NoFreeSlot, claim_agent_slot, load_or_create


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWARMHUB_NATS_URL", raising=False)
    assert BusSettings().nats_url == "nats://127.0.0.1:4222"
    assert TelemetrySettings().metrics_port == 0


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMHUB_NATS_URL", "nats://127.0.0.1:5000")
    monkeypatch.setenv("SWARMHUB_CONCURRENCY", "7")
    monkeypatch.setenv("SWARMHUB_ACK_WAIT", "12.5")
    assert BusSettings().nats_url == "nats://127.0.0.1:5000"
    assert WorkerSettings().concurrency == 7
    assert RouterSettings().ack_wait == 12.5


def test_invalid_values_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMHUB_CONCURRENCY", "0")
    with pytest.raises(ValidationError, match="concurrency"):
        WorkerSettings()
    monkeypatch.setenv("SWARMHUB_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="log_level"):
        TelemetrySettings()


def test_settings_are_frozen() -> None:
    settings = BusSettings()
    with pytest.raises(ValidationError):
        settings.nats_url = "x"  # type: ignore[misc]


def test_agent_slots_are_claimed_once_and_freed_with_their_holder(tmp_path: Path) -> None:
    creds = load_or_create(tmp_path, workers=1, agent_slots=2)
    slots = {u.agent_id for u in creds.users if u.role == "agent"}
    assert len(slots) == 2
    first = claim_agent_slot(tmp_path)
    second = claim_agent_slot(tmp_path)
    assert first is not None and second is not None
    assert {first[0].agent_id, second[0].agent_id} == slots
    with pytest.raises(NoFreeSlot, match="All 2 agent slots"):
        claim_agent_slot(tmp_path)
    os.close(first[1])  # the holder ends: the kernel frees its lock
    again = claim_agent_slot(tmp_path)
    assert again is not None and again[0].agent_id == first[0].agent_id
    assert claim_agent_slot(tmp_path / "elsewhere") is None
