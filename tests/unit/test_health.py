"""The probe endpoints as a WSGI app, without a server."""

from __future__ import annotations

from typing import Any
from wsgiref.util import setup_testing_defaults

from swarmhub.health import Readiness, make_app


def get(readiness: Readiness, path: str) -> tuple[str, str]:
    """Status line and body of GET `path`."""
    environ: dict[str, Any] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    seen: list[str] = []
    body = b"".join(make_app(readiness)(environ, lambda status, headers: seen.append(status)))
    return seen[0], body.decode()


def test_healthz_answers_while_not_ready() -> None:
    assert get(lambda: "disconnected from NATS", "/healthz") == ("200 OK", "alive\n")


def test_readyz_is_200_only_when_ready_and_gives_one_line_otherwise() -> None:
    assert get(lambda: None, "/readyz") == ("200 OK", "ready\n")
    status, body = get(lambda: "NATS connection closed\nsecond line", "/readyz")
    assert (status, body) == ("503 Service Unavailable", "NATS connection closed\n")


def test_readyz_answers_503_when_the_check_itself_fails() -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    assert get(broken, "/readyz") == (
        "503 Service Unavailable",
        "readiness check failed: RuntimeError\n",
    )


def test_other_paths_are_the_prometheus_exposition() -> None:
    status, body = get(lambda: None, "/metrics")
    assert status.startswith("200") and "# HELP" in body
