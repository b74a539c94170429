"""Settings come from SWARMHUB_* variables and are validated."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from swarmhub.config import BusSettings, RouterSettings, TelemetrySettings, WorkerSettings


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
