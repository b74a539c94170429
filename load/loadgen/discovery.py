"""Finding the cluster's processes to sample: given PIDs, `$SRV.INFO`, or a local scan."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import psutil

from swarmhub.client import SwarmClient

SERVICE_MODULES = {
    "swarmhub.task_router": "task-router",
    "swarmhub.agent_worker": "agent-worker",
    "swarmhub.swarm_coordinator": "swarm-coordinator",
    "swarmhub.cache_service": "cache",
}
_DEFAULT_PORT = 4222


def url_port(url: str) -> int:
    """The port of the first server of a NATS URL (4222 when it names none)."""
    return urlparse(url.split(",")[0].strip()).port or _DEFAULT_PORT


def parse_pids(text: str) -> dict[str, int]:
    """`123,456` or `router=123,worker=456` into {name: pid}."""
    pids: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = item.rpartition("=")
        if not number.isdigit():
            raise ValueError(f"Invalid PID {item!r}. Give numbers, e.g. --pids 1234,5678.")
        pids[name or f"pid-{number}"] = int(number)
    return pids


def service_of(cmdline: list[str]) -> str | None:
    """The service a command line runs (`python -m swarmhub.task_router` -> task-router), if any."""
    for i, arg in enumerate(cmdline[:-1]):
        if arg == "-m" and cmdline[i + 1] in SERVICE_MODULES:
            return SERVICE_MODULES[cmdline[i + 1]]
    return None


def _env_port(proc: psutil.Process) -> int | None:
    try:
        url = proc.environ().get("SWARMHUB_NATS_URL")
    except (psutil.Error, OSError):
        return None
    return url_port(url) if url else _DEFAULT_PORT


def _connects_to(proc: psutil.Process, port: int) -> bool:
    try:
        conns = proc.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return False
    return any(c.raddr and c.raddr.port == port for c in conns)


def _listens_on(proc: psutil.Process, port: int) -> bool:
    try:
        conns = proc.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)


def _local_service(pid: int) -> str | None:
    try:
        return service_of(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return None


def from_srv_info(infos: list[dict[str, Any]]) -> dict[str, int]:
    """Services whose `$SRV.INFO` metadata names a PID that runs that service on this host."""
    found: dict[str, int] = {}
    for info in infos:
        pid_text = str((info.get("metadata") or {}).get("pid", ""))
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        # The PID may belong to another host; only a local process running a service counts.
        if _local_service(pid) is not None:
            found[f"{info.get('name', 'service')}:{pid}"] = pid
    return found


def local_nats_servers(port: int) -> dict[str, int]:
    """Local nats-server processes listening on `port`."""
    found: dict[str, int] = {}
    for proc in psutil.process_iter(["pid", "name"]):
        name = proc.info.get("name") or ""
        if re.fullmatch(r"nats-server(\.exe)?", name) and _listens_on(proc, port):
            found[f"nats-server:{proc.pid}"] = proc.pid
    return found


async def discover(client: SwarmClient, url: str) -> dict[str, int]:
    """Services answering `$SRV.INFO` that run here, plus the local nats-server; else a scan."""
    found = from_srv_info(await client.discover("INFO", wait=0.5))
    if not found:
        return discover_local(url)
    return {**found, **local_nats_servers(url_port(url))}


def discover_local(url: str) -> dict[str, int]:
    """Local services and nats-server serving `url`'s port, found by command line (read only)."""
    port = url_port(url)
    found: dict[str, int] = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            name = proc.info["name"] or ""
        except (psutil.Error, KeyError):
            continue
        service = service_of(cmdline)
        if service is not None:
            env_port = _env_port(proc)
            if env_port == port or (env_port is None and _connects_to(proc, port)):
                found[f"{service}:{proc.pid}"] = proc.pid
        elif re.fullmatch(r"nats-server(\.exe)?", name) and _listens_on(proc, port):
            found[f"nats-server:{proc.pid}"] = proc.pid
    return found
