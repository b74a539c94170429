"""TLS required on the client port of a real nats-server (`swarmhub up --tls`): clients that
trust the development CA connect and tasks run end to end; plaintext and untrusting clients are
refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from swarmhub import subjects
from swarmhub.client import SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, NatsServer, free_port
from swarmhub.errors import ServiceError
from swarmhub.schemas import ResultStatus, Task
from swarmhub.tls import (
    ServerTLS,
    client_context,
    client_files,
    dev_server_tls,
    make_dev_certs,
    tls_dir,
)
from tests.conftest import cluster_running, wait_for_agents


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose `.data` holds the cluster's credentials and development CA."""
    return tmp_path_factory.mktemp("tls-home")


@pytest.fixture(scope="module")
def cluster(home: Path) -> Iterator[LocalCluster]:
    """`swarmhub up --tls` with per-role credentials: every service connects over TLS."""
    data = home / ".data"
    make_dev_certs(data)
    config = ClusterConfig(data_dir=data, port=free_port(), workers=1, tls=dev_server_tls(data))
    with cluster_running(config) as local:
        yield local


@pytest.fixture
async def trusted(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LocalCluster]:
    """This process trusts the cluster's CA (as `swarmhub up --tls` sets for itself)."""
    assert cluster.config.tls is not None
    monkeypatch.setenv("SWARMHUB_TLS_CA", str(cluster.config.tls.ca))
    await wait_for_agents(cluster.url, 1)
    yield cluster


async def test_a_task_runs_end_to_end_over_tls(trusted: LocalCluster) -> None:
    # Given a cluster whose server requires TLS, and services that connected to it
    assert trusted.server_url.startswith("tls://")
    assert "TLS required for client connections" in trusted.nats.log_path.read_text()
    # When a client that trusts the CA submits a task
    async with SwarmClient.connect(trusted.url) as client:
        result = await client.run(Task(capability="echo", payload={"text": "hi"}), timeout=30)
        # Then a worker runs it and the router records the result, all over TLS
        assert result.status is ResultStatus.SUCCEEDED
        assert result.output == {"text": "hi"}


def test_the_cli_finds_the_ca_and_credentials_in_the_data_folder(
    cluster: LocalCluster, home: Path
) -> None:
    # Given the project folder of the cluster, no TLS or credential settings, a plain nats:// URL
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SWARMHUB_TLS_CA", "SWARMHUB_DATA_DIR", "SWARMHUB_NATS_URL")
    }
    env["SWARMHUB_NATS_URL"] = f"nats://127.0.0.1:{cluster.nats.port}"
    # When the CLI submits a task and waits
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmhub",
            "submit",
            "echo",
            "--payload",
            '{"text": "cli"}',
            "--wait",
        ],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Then it upgraded to TLS with the folder's CA and logged in with the folder's credentials
    assert done.returncode == 0, done.stderr
    assert '{"text": "cli"}' in done.stdout


async def test_plaintext_is_refused(cluster: LocalCluster) -> None:
    assert cluster.config.tls is not None and cluster.credentials is not None
    router = cluster.credentials.user("router")
    probe = subjects.task_progress("operator", "plaintext-probe")
    trust = client_context(cluster.config.tls.ca)
    # Given a client over TLS listening where the router role may publish
    watcher = await nats.connect(cluster.url_as("operator"), tls=trust, allow_reconnect=False)
    sender = await nats.connect(cluster.url_as("router"), tls=trust, allow_reconnect=False)
    try:
        seen: list[bytes] = []
        marker = asyncio.get_running_loop().create_future()

        async def on_msg(msg: Msg) -> None:
            if msg.data == b"marker":
                marker.set_result(None)
            else:
                seen.append(msg.data)

        await watcher.subscribe(probe, cb=on_msg)
        await watcher.flush()
        # When a client speaks plaintext NATS, even with the router's valid credentials
        reader, writer = await asyncio.open_connection("127.0.0.1", cluster.nats.port)
        info = json.loads((await reader.readline()).split(b" ", 1)[1])
        assert info["tls_required"] is True
        connect = {"verbose": False, "user": router.name, "pass": router.password}
        writer.write(
            b"CONNECT " + json.dumps(connect).encode() + b"\r\n"
            b"PUB " + probe.encode() + b" 5\r\nhello\r\nPING\r\n"
        )
        await writer.drain()
        # Then the server closes the connection without a PONG ...
        rest = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert b"PONG" not in rest
        # ... and its message was never delivered (a TLS client's later one is)
        await sender.publish(probe, b"marker")
        await asyncio.wait_for(marker, timeout=10)
        assert seen == []
    finally:
        await sender.close()
        await watcher.close()


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = cluster.credentials.user("operator")  # type: ignore[union-attr]
    # nats-py with the system's CAs only: the development certificate does not verify
    with pytest.raises(ssl.SSLCertVerificationError):
        await nats.connect(
            cluster.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5
        )
    # SwarmClient trusting another CA: refused, with the reason and without the password
    make_dev_certs(tmp_path / "other")
    monkeypatch.setenv("SWARMHUB_TLS_CA", str(tls_dir(tmp_path / "other") / "ca.pem"))
    monkeypatch.setenv("SWARMHUB_DATA_DIR", str(tmp_path))
    with pytest.raises(ServiceError) as refused:
        await SwarmClient.connect(cluster.url)
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.message
    assert operator.password not in refused.value.message


async def test_mutual_tls_needs_a_client_certificate_from_the_ca(tmp_path: Path) -> None:
    make_dev_certs(tmp_path, clients=["tester"])
    folder = tls_dir(tmp_path)
    files = dev_server_tls(tmp_path)
    server = NatsServer(
        tmp_path / "nats", tls=ServerTLS(files.cert, files.key, files.ca, verify=True)
    ).start()
    try:
        cert, key = (folder / name for name in client_files("tester"))
        nc = await nats.connect(
            server.url, tls=client_context(files.ca, cert, key), allow_reconnect=False
        )
        await nc.flush()
        await nc.close()
        with pytest.raises(Exception):  # noqa: B017 - the server drops the handshake
            await nats.connect(
                server.url,
                tls=client_context(files.ca),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=5,
            )
    finally:
        server.stop()


async def test_a_three_node_cluster_with_tls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / ".data"
    make_dev_certs(data)
    tls = dev_server_tls(data)
    monkeypatch.setenv("SWARMHUB_TLS_CA", str(tls.ca))
    local = LocalCluster(
        ClusterConfig(data_dir=data, port=0, workers=1, nats_nodes=3, tls=tls),
        on_event=lambda text: None,
    ).start()
    try:
        await wait_for_agents(local.url, 1, timeout=60)
        async with SwarmClient.connect(local.url) as client:
            result = await client.run(Task(capability="echo", payload={"n": 3}), timeout=30)
            assert result.output == {"n": 3}
        # and the routes between the nodes speak only TLS: a plaintext peer gets not even an INFO
        for node in local.nodes:
            assert node.cluster_port
            reader, writer = await asyncio.open_connection("127.0.0.1", node.cluster_port)
            writer.write(b"CONNECT {}\r\nPING\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), timeout=15)
            writer.close()
            assert b"INFO" not in answer and b"PONG" not in answer, (node.name, answer[:80])
    finally:
        local.stop()


async def _plaintext_server(heard: bytearray) -> asyncio.Server:
    """A server that offers plaintext NATS (an INFO without TLS) and keeps every byte it gets."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "fake", "version": "2.10.0", "max_payload": 1048576, "headers": True}
        writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            while chunk := await reader.read(4096):
                heard.extend(chunk)
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def test_a_tls_url_never_sends_credentials_in_plaintext(tmp_path: Path) -> None:
    # Given a server that offers plaintext, and a password
    heard = bytearray()
    server = await _plaintext_server(heard)
    port = server.sockets[0].getsockname()[1]
    secret = "s3cret-not-for-plaintext"
    try:
        # When a client connects to it with a tls:// URL
        with pytest.raises(ServiceError) as refused:
            await SwarmClient.connect(f"tls://router:{secret}@127.0.0.1:{port}")
        assert secret not in refused.value.message
        # Then it sent no NATS protocol at all, so neither the user nor the password
        assert b"CONNECT" not in heard and secret.encode() not in heard
        # (with a nats:// URL nats-py logs in over plaintext: what the tls:// scheme prevents)
        with contextlib.suppress(Exception):
            nc = await nats.connect(
                f"nats://router:{secret}@127.0.0.1:{port}",
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
            await nc.close()
        assert secret.encode() in heard
    finally:
        server.close()
