"""TLS for a local cluster: a development CA and certificates, the server's `tls {}` block, and
the client side's SSL context.

`swarmhub tls init` (and `swarmhub up --tls` when the files are missing) writes into
`<data dir>/tls/`: `ca.pem` (the development CA clients trust), `ca-key.pem`, `server-cert.pem`
and `server-key.pem` for 127.0.0.1 and localhost, and on request `client-<name>-cert.pem` /
`client-<name>-key.pem`. Key files are mode 0600. The files are made by the `openssl` command
(no hand-written crypto) and are for development only: the CA key sits beside the certificates.

Clients trust the CA named by `SWARMHUB_TLS_CA`, else the `tls/ca.pem` of the data folder they
find the credentials in (`SWARMHUB_DATA_DIR`, else `./.data`). With a `tls://` URL the client
starts TLS before the server's first word (nats-server's `handshake_first`), so it never sends
credentials in plaintext, even to a server that offers plaintext. With `nats://` nats-py upgrades
only when the server requires TLS, so a server that does not gets plaintext. The servers this
module configures accept both (`handshake_first: auto`), and their cluster routes use TLS too.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TLS_DIR = "tls"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server-cert.pem"
SERVER_KEY_FILE = "server-key.pem"
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_DAYS = 365
_DEFAULT_DATA_DIR = Path(".data")  # the same default as swarmhub.credentials


class TLSError(RuntimeError):
    """The development certificates could not be made or read; the message says why."""


@dataclass(frozen=True)
class ServerTLS:
    """The files a TLS-requiring nats-server uses."""

    cert: Path
    key: Path
    ca: Path | None = None  # the CA clients trust (and, with `verify`, that client certs need)
    verify: bool = False  # require a client certificate signed by `ca` (mutual TLS)

    def block(self) -> str:
        """The nats-server `tls {}` block: TLS required on the client port.

        `handshake_first: auto` serves clients that start TLS at once (`tls://` URLs here) and,
        after a short wait, those that upgrade once they read the server's INFO.
        """
        lines = ["tls {", *self._files()]
        if self.verify:
            lines.append("  verify: true")
        lines += ["  handshake_first: auto", "  timeout: 2", "}"]
        return "\n".join(lines)

    def route_block(self) -> list[str]:
        """The `tls {}` lines of a `cluster {}` block: routes between nodes over mutual TLS."""
        if self.ca is None:
            raise TLSError("TLS between cluster nodes needs the CA that signed their certificate.")
        return [
            f"  {line}" for line in ("tls {", *self._files(), "  verify: true", "  timeout: 2", "}")
        ]

    def _files(self) -> list[str]:
        lines = [f'  cert_file: "{self.cert.as_posix()}"', f'  key_file: "{self.key.as_posix()}"']
        if self.ca is not None:
            lines.append(f'  ca_file: "{self.ca.as_posix()}"')
        return lines


def tls_dir(data_dir: Path) -> Path:
    """Where a data folder keeps its TLS files."""
    return data_dir / TLS_DIR


def dev_server_tls(data_dir: Path) -> ServerTLS:
    """The development files of `data_dir` (whether they exist or not)."""
    folder = tls_dir(data_dir)
    return ServerTLS(folder / SERVER_CERT_FILE, folder / SERVER_KEY_FILE, folder / CA_FILE)


def _openssl() -> str:
    found = shutil.which("openssl")
    if not found:
        raise TLSError(
            "The openssl command was not found; install it (e.g. `apt-get install openssl`) or "
            "point SWARMHUB_TLS_CERT, SWARMHUB_TLS_KEY and SWARMHUB_TLS_CA at your own files."
        )
    return found


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [_openssl(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        # openssl's errors name the step, never print key material.
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TLSError(f"openssl {args[0]} failed (exit {done.returncode}): {last}")


def _config(hosts: Iterable[str]) -> str:
    names = [f"IP:{h}" if _is_ip(h) else f"DNS:{h}" for h in hosts]
    return "\n".join(
        [
            "[req]",
            "distinguished_name = dn",
            "prompt = no",
            "[dn]",
            "CN = SwarmHub development CA",
            "[ca]",
            "basicConstraints = critical,CA:TRUE",
            "keyUsage = critical,keyCertSign,cRLSign",
            "subjectKeyIdentifier = hash",
            "[server]",
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature",
            # clientAuth too: a cluster node presents it when it dials a route to another node.
            "extendedKeyUsage = serverAuth,clientAuth",
            f"subjectAltName = {','.join(names)}",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid,issuer",
            "[client]",
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature",
            "extendedKeyUsage = clientAuth",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid,issuer",
            "",
        ]
    )


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _new_key(work: Path, name: str) -> None:
    _run(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=work
    )
    (work / name).chmod(0o600)


def _sign(work: Path, key: str, cert: str, subject: str, section: str, days: int) -> None:
    """A certificate for `key`, signed by the CA in `work`, with extensions from `section`."""
    csr = f"{cert}.csr"
    _run("req", "-new", "-config", "dev.cnf", "-key", key, "-subj", subject, "-out", csr, cwd=work)
    _run(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        CA_FILE,
        "-CAkey",
        CA_KEY_FILE,
        "-set_serial",
        f"0x{secrets.token_hex(16)}",
        "-days",
        str(days),
        "-sha256",
        "-extfile",
        "dev.cnf",
        "-extensions",
        section,
        "-out",
        cert,
        cwd=work,
    )


def make_dev_certs(
    data_dir: Path,
    *,
    hosts: Iterable[str] = DEFAULT_HOSTS,
    clients: Iterable[str] = (),
    days: int = DEFAULT_DAYS,
    force: bool = False,
) -> list[Path]:
    """Write a development CA, a server certificate for `hosts` and one client certificate per
    name in `clients` into `<data_dir>/tls/`; returns the files written.

    Existing files are kept unless `force` (a new CA then replaces the old one: clients must
    trust the new `ca.pem`). Client certificates are signed by the existing CA when it is kept.
    """
    hosts = list(hosts)
    clients = list(clients)
    if not hosts:
        raise TLSError("A server certificate needs at least one host name or IP address.")
    folder = tls_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    have_ca = (folder / CA_FILE).is_file() and (folder / CA_KEY_FILE).is_file()
    have_server = (folder / SERVER_CERT_FILE).is_file() and (folder / SERVER_KEY_FILE).is_file()
    new_ca = force or not have_ca
    wanted: list[tuple[str, str, str, str]] = []  # (cert, key, subject, section)
    if new_ca or not have_server:
        wanted.append((SERVER_CERT_FILE, SERVER_KEY_FILE, f"/CN={hosts[0]}", "server"))
    for name in clients:
        cert, key = client_files(name)
        if force or new_ca or not (folder / cert).is_file():
            wanted.append((cert, key, f"/CN={name}", "client"))
    if not new_ca and not wanted:
        return []
    written: list[Path] = []
    # Made in a private folder beside the final one, then moved in: never half-written files.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".making-") as tmp:
        work = Path(tmp)
        (work / "dev.cnf").write_text(_config(hosts))
        if new_ca:
            _new_key(work, CA_KEY_FILE)
            _run(
                "req",
                "-x509",
                "-new",
                "-config",
                "dev.cnf",
                "-extensions",
                "ca",
                "-key",
                CA_KEY_FILE,
                "-sha256",
                "-days",
                str(days),
                "-out",
                CA_FILE,
                cwd=work,
            )
        else:
            shutil.copy(folder / CA_FILE, work / CA_FILE)
            shutil.copy(folder / CA_KEY_FILE, work / CA_KEY_FILE)
            (work / CA_KEY_FILE).chmod(0o600)
        for cert, key, subject, section in wanted:
            _new_key(work, key)
            _sign(work, key, cert, subject, section, days)
            (work / cert).chmod(0o644)
        names = [n for pair in wanted for n in pair[:2]]
        if new_ca:
            (work / CA_FILE).chmod(0o644)
            names = [CA_KEY_FILE, CA_FILE, *names]
        for name in names:
            os.replace(work / name, folder / name)
            written.append(folder / name)
    return written


def client_files(name: str) -> tuple[str, str]:
    """File names of the client certificate and key called `name`."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise TLSError(f"{name!r} is not a client name (letters, digits, '-', '_', '.').")
    return f"client-{name}-cert.pem", f"client-{name}-key.pem"


def find_ca(data_dir: Path | None = None) -> Path | None:
    """The development CA of the data folder clients find credentials in (`data_dir`, else
    SWARMHUB_DATA_DIR, else ./.data), if it has one."""
    base = data_dir or Path(os.environ.get("SWARMHUB_DATA_DIR") or _DEFAULT_DATA_DIR)
    path = tls_dir(base) / CA_FILE
    return path if path.is_file() else None


class _QuietSSLClose(logging.Filter):
    """Drops asyncio's "returning true from eof_received() has no effect when using ssl", which
    nats-py's TLS transport causes on every close (noise on the CLI's stderr)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


_QUIET = _QuietSSLClose()


def tls_first(url: str) -> bool:
    """Whether a (comma list) URL asks for TLS from the first byte: any `tls://` server in it."""
    return any(part.strip().lower().startswith("tls://") for part in url.split(","))


def client_context(
    ca: str | Path | None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    *,
    required: bool = False,
) -> ssl.SSLContext | None:
    """An SSL context that trusts `ca` (and presents `cert`/`key` for mutual TLS); None when
    there is nothing to add to the system's defaults, unless `required`."""
    if ca is None and cert is None and not required:
        return None
    logging.getLogger("asyncio").addFilter(_QUIET)  # once: filters are a set-like list
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError(f"Cannot load the TLS CA file {ca}: {type(exc).__name__}") from None
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(
                f"Cannot load the TLS client certificate {cert}: {type(exc).__name__}"
            ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
