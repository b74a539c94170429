"""/healthz and /readyz of a real service against a real nats-server: paused, resumed, closed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmhub import health
from swarmhub.cache_service.service import CacheService
from swarmhub.config import BusSettings
from swarmhub.embedded import NatsServer, free_port, stop_process, wait_for
from tests.conftest import wait_until


def probe(port: int, path: str) -> tuple[int, str]:
    """Status and body of GET path on the service's HTTP port (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test alone: it gets paused."""
    server = NatsServer(tmp_path / "nats", name="health-nats").start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def cache_process(nats_server: NatsServer, tmp_path: Path) -> Iterator[int]:
    """A cache service process with its HTTP port; yields the port, stops it by PID after."""
    port = free_port()
    env = {
        **os.environ,
        "SWARMHUB_NATS_URL": nats_server.url,
        "SWARMHUB_METRICS_PORT": str(port),
        # Notice a silent server within about a second instead of the default 15.
        "SWARMHUB_PING_INTERVAL": "0.5",
        "SWARMHUB_MAX_OUTSTANDING_PINGS": "2",
        "SWARMHUB_CONNECT_TIMEOUT": "1",
        "SWARMHUB_RECONNECT_WAIT": "0.2",
        "SWARMHUB_LOG_LEVEL": "warning",
    }
    log = (tmp_path / "cache.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "swarmhub.cache_service"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    try:
        yield port
    finally:
        stop_process(proc, 10.0)


def test_readyz_follows_the_nats_connection(nats_server: NatsServer, cache_process: int) -> None:
    port = cache_process
    assert nats_server.proc is not None
    # Given a started service
    wait_for(lambda: probe(port, "/readyz")[0] == 200, 30, "the service to be ready")
    assert probe(port, "/healthz") == (200, "alive\n")
    metrics = probe(port, "/metrics")[1]
    assert "swarmhub_nats_connected 1.0" in metrics
    assert "swarmhub_build_info{" in metrics and 'service="cache"' in metrics
    assert "swarmhub_cache_entries" in metrics
    # A process exports only its own service's metrics: no worker gauge at 0 in the cache.
    assert "swarmhub_worker_capacity" not in metrics
    assert "swarmhub_agents_alive" not in metrics

    # When nats-server is paused, the service is alive but not ready
    os.kill(nats_server.proc.pid, signal.SIGSTOP)
    wait_for(lambda: probe(port, "/readyz")[0] == 503, 20, "/readyz to fail while NATS is paused")
    status, reason = probe(port, "/readyz")
    assert status == 503 and "NATS" in reason and reason.count("\n") == 1
    assert probe(port, "/healthz")[0] == 200
    assert "swarmhub_nats_connected 0.0" in probe(port, "/metrics")[1]

    # Then ready again once it resumes
    os.kill(nats_server.proc.pid, signal.SIGCONT)
    wait_for(lambda: probe(port, "/readyz")[0] == 200, 30, "/readyz to recover after SIGCONT")


async def test_readyz_fails_when_the_connection_is_closed_for_good(nats_url: str) -> None:
    # Given a started service with its HTTP server
    service = CacheService(bus_settings=BusSettings(nats_url=nats_url))
    port = free_port()
    server = health.serve("127.0.0.1", port, service.readiness)
    try:
        assert probe(port, "/readyz") == (503, "starting: not yet connected and subscribed\n")
        await service.start()
        assert probe(port, "/readyz") == (200, "ready\n")

        # When its connection closes for good
        await service.bus.nc.close()

        # Then it is not ready, saying why, and it stops itself
        async def closed() -> bool:
            return probe(port, "/readyz") == (503, "NATS connection closed\n")

        await wait_until(closed, 10, "/readyz to report the closed connection")
        assert service.stopping.is_set() and service.exit_code == 1
        assert probe(port, "/healthz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        await service.shutdown()
