"""The development TLS helper: files, modes, names, and that they make a verifiable handshake."""

from __future__ import annotations

import ssl
import stat
import subprocess
from pathlib import Path

import pytest

from swarmhub.cli import main
from swarmhub.config import BusSettings, TLSSettings
from swarmhub.embedded import NatsServer, nats_server_binary
from swarmhub.tls import (
    ServerTLS,
    TLSError,
    client_context,
    client_files,
    dev_server_tls,
    find_ca,
    make_dev_certs,
    tls_dir,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert_text(path: Path) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> None:
    """A TLS handshake in memory: raises if the client does not accept the server."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, end in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def server_context(files: ServerTLS) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def test_makes_a_ca_and_a_server_certificate_with_private_keys(tmp_path: Path) -> None:
    written = make_dev_certs(tmp_path)
    folder = tls_dir(tmp_path)
    names = {p.name for p in written}
    assert names == {"ca.pem", "ca-key.pem", "server-cert.pem", "server-key.pem"}
    assert mode(folder) == 0o700
    assert mode(folder / "ca-key.pem") == 0o600
    assert mode(folder / "server-key.pem") == 0o600
    assert mode(folder / "ca.pem") == 0o644
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no leftovers
    text = cert_text(folder / "server-cert.pem")
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    assert "TLS Web Server Authentication" in text
    assert "CA:TRUE" in cert_text(folder / "ca.pem")


def test_the_certificates_verify_for_127_0_0_1_and_localhost_only(tmp_path: Path) -> None:
    make_dev_certs(tmp_path)
    files = dev_server_tls(tmp_path)
    trust = client_context(files.ca)
    assert trust is not None
    handshake(server_context(files), trust, "127.0.0.1")
    handshake(server_context(files), trust, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server_context(files), trust, "example.com")
    with pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs do not know it
        handshake(server_context(files), ssl.create_default_context(), "127.0.0.1")


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    make_dev_certs(tmp_path)
    ca = (tls_dir(tmp_path) / "ca.pem").read_bytes()
    assert make_dev_certs(tmp_path) == []
    assert (tls_dir(tmp_path) / "ca.pem").read_bytes() == ca
    assert len(make_dev_certs(tmp_path, force=True)) == 4
    assert (tls_dir(tmp_path) / "ca.pem").read_bytes() != ca


def test_client_certificates_are_signed_by_the_kept_ca(tmp_path: Path) -> None:
    make_dev_certs(tmp_path)
    ca = (tls_dir(tmp_path) / "ca.pem").read_bytes()
    written = make_dev_certs(tmp_path, clients=["alice"])
    cert, key = (tls_dir(tmp_path) / n for n in client_files("alice"))
    assert set(written) == {cert, key}
    assert mode(key) == 0o600
    assert (tls_dir(tmp_path) / "ca.pem").read_bytes() == ca
    assert "TLS Web Client Authentication" in cert_text(cert)
    assert client_context(tls_dir(tmp_path) / "ca.pem", cert, key) is not None
    with pytest.raises(TLSError):
        client_files("../evil")


def test_other_hosts_can_be_named(tmp_path: Path) -> None:
    make_dev_certs(tmp_path, hosts=["10.1.2.3", "hub.local"])
    text = cert_text(tls_dir(tmp_path) / "server-cert.pem")
    assert "IP Address:10.1.2.3" in text and "DNS:hub.local" in text
    assert "127.0.0.1" not in text


def test_the_server_block_is_a_valid_nats_server_config(tmp_path: Path) -> None:
    make_dev_certs(tmp_path)
    files = dev_server_tls(tmp_path)
    block = ServerTLS(files.cert, files.key, files.ca, verify=True).block()
    assert "cert_file" in block and "ca_file" in block and "verify: true" in block
    server = NatsServer(tmp_path / "nats", port=4999, tls=files)
    assert server.url == "tls://127.0.0.1:4999"
    server.data_dir.mkdir()
    config = server._write_config()
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


def test_clients_find_the_ca_like_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARMHUB_TLS_CA", raising=False)
    monkeypatch.setenv("SWARMHUB_DATA_DIR", str(tmp_path))
    assert find_ca() is None
    assert client_context(None) is None
    make_dev_certs(tmp_path)
    assert find_ca() == tls_dir(tmp_path) / "ca.pem"
    monkeypatch.setenv("SWARMHUB_TLS_CA", "/elsewhere/ca.pem")
    assert BusSettings().tls_ca == "/elsewhere/ca.pem"
    with pytest.raises(TLSError, match=r"/elsewhere/ca\.pem"):
        client_context(BusSettings().tls_ca)


def test_a_key_file_is_not_a_ca(tmp_path: Path) -> None:
    make_dev_certs(tmp_path)
    key = tls_dir(tmp_path) / "ca-key.pem"
    with pytest.raises(TLSError) as failed:
        client_context(key)
    assert "PRIVATE KEY" not in str(failed.value)


def test_tls_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMHUB_TLS", "1")
    monkeypatch.setenv("SWARMHUB_TLS_CERT", "/c.pem")
    settings = TLSSettings()
    assert settings.tls and settings.tls_cert == "/c.pem" and settings.tls_key is None


def test_cli_tls_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    assert main(["tls", "init", "--data-dir", str(data), "--client", "ops"]) == 0
    out = capsys.readouterr().out
    assert "server-key.pem" in out and "development only" in out
    assert mode(tls_dir(data) / "client-ops-key.pem") == 0o600
    assert main(["tls", "init", "--data-dir", str(data)]) == 0
    assert "kept the existing files" in capsys.readouterr().out
    assert main(["tls", "init", "--data-dir", str(data), "--client", "bad/name"]) == 2


def test_up_uses_the_named_files_or_makes_the_dev_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from swarmhub.cli import _server_tls

    for name in ("SWARMHUB_TLS_CERT", "SWARMHUB_TLS_KEY", "SWARMHUB_TLS_CA"):
        monkeypatch.delenv(name, raising=False)
    made = _server_tls(tmp_path / "data")
    assert made == dev_server_tls(tmp_path / "data") and made.cert.is_file()
    monkeypatch.setenv("SWARMHUB_TLS_CERT", str(tmp_path / "mine.pem"))
    with pytest.raises(TLSError, match="SWARMHUB_TLS_KEY"):
        _server_tls(tmp_path / "data")
    monkeypatch.setenv("SWARMHUB_TLS_KEY", str(tmp_path / "mine-key.pem"))
    named = _server_tls(tmp_path / "data")
    assert named == ServerTLS(tmp_path / "mine.pem", tmp_path / "mine-key.pem", None)
