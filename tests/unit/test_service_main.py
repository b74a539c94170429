"""`python -m <service>`: logging is configured before the service and its parts are built."""

from __future__ import annotations

from typing import Any

import pytest

from swarmhub import service_main, telemetry
from swarmhub.config import WorkerSettings
from swarmhub.runtime import Service


class Recorder(Service):
    """A service that, like the coordinator's job runner, keeps the logger it is built with."""

    name = "recorder"
    kept: Any = None

    def __init__(self) -> None:
        super().__init__()
        Recorder.kept = telemetry.get_logger(part="jobs")


def test_parts_built_with_the_service_log_at_the_configured_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWARMHUB_LOG_LEVEL", "info")
    monkeypatch.setenv("SWARMHUB_LOG_FORMAT", "json")
    monkeypatch.setattr(service_main, "run_service", lambda factory: factory())
    service_main.service_main(Recorder, WorkerSettings, argv=[])
    capsys.readouterr()
    Recorder.kept.debug("hidden_event")
    Recorder.kept.info("shown_event")
    lines = capsys.readouterr().err.splitlines()
    assert not any("hidden_event" in line for line in lines)
    shown = [line for line in lines if "shown_event" in line]
    assert len(shown) == 1 and shown[0].startswith("{") and '"part": "jobs"' in shown[0]


@pytest.mark.parametrize(
    ("factory", "package"),
    [
        ("swarmhub.agent_worker.service:AgentWorker", "swarmhub.agent_worker"),
        ("swarmhub.cache_service.service:CacheService", "swarmhub.cache_service"),
    ],
)
def test_help_names_the_command_that_runs_the_service(
    factory: str, package: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module, _, attr = factory.partition(":")
    service_class = getattr(__import__(module, fromlist=[attr]), attr)
    with pytest.raises(SystemExit):
        service_main.service_main(service_class, WorkerSettings, argv=["--help"])
    assert capsys.readouterr().out.startswith(f"usage: python -m {package} ")
