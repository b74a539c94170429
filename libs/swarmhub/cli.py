"""The `swarmhub` command: up, worker, submit, cancel, result, status, swarm, dead, (load, bench).

Exit codes: 0 success; 1 the task failed (or had finished when cancelled) or the hub refused;
2 invalid input or usage; 3 no such result or dead letter; 4 the hub cannot be reached; 5 a
wait timed out; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swarmhub import __version__
from swarmhub.app import AppError, load_app
from swarmhub.config import TLSSettings, default_nats_url, redact_url, scrub_credentials
from swarmhub.credentials import NoFreeSlot
from swarmhub.embedded import ServerStartError
from swarmhub.errors import Rejected, ServiceError, TimedOut, Unavailable
from swarmhub.limits import cut
from swarmhub.observe import ObserveError
from swarmhub.schemas import Priority, Task, TaskProgress, TaskResult
from swarmhub.subjects import check_token
from swarmhub.tls import ServerTLS, TLSError

CLEAR_LINE = "\r\033[K"
"""Moves to the start of the terminal line and clears it (only written to a terminal)."""


def _default_port() -> int:
    from urllib.parse import urlparse

    return urlparse(default_nats_url().split(",")[0]).port or 4222


def json_object(text: str) -> dict[str, Any]:
    """An argparse type: a JSON object, e.g. a task payload."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. \'{"text": "hi"}\'.')
    return value


PLUGINS = "swarmhub.commands"
"""Entry-point group of commands plugged in from above (the load generator's `load`, `bench`)."""

EXTRAS = {"psutil": "load", "hdrh": "load", "matplotlib": "load", "opentelemetry": "otlp"}
"""Top-level modules an optional extra installs, by the extra's name."""


def _add_plugin_commands(sub: Any) -> None:
    """Commands other packages register under the `swarmhub.commands` entry-point group.

    Each entry point is a function that adds its subparser and sets `plugin_handler`. The
    library never imports the tools built on it; they plug themselves in.
    """
    from importlib.metadata import entry_points

    for plugin in entry_points(group=PLUGINS):
        try:
            plugin.load()(sub)
        except ImportError as exc:  # installed without what it needs: say so when it is used
            missing = sub.add_parser(plugin.name, help=f"(unavailable: {exc})")
            missing.set_defaults(plugin_handler=_unavailable(plugin.name, exc))


def _unavailable(name: str, exc: ImportError) -> Any:
    def handler(args: argparse.Namespace) -> int:
        raise exc

    return handler


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that would install a missing module, if one would."""
    top = (exc.name or "").split(".")[0]
    return EXTRAS.get(top)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="swarmhub",
        description="SwarmHub task hub.",
        epilog="exit codes: 0 ok, 1 task failed or refused, 2 invalid input, 3 not found, "
        "4 hub unreachable, 5 wait timed out, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"swarmhub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_url(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--url",
            type=nats_url,
            default=default_nats_url(),
            help="NATS URL (env SWARMHUB_NATS_URL)",
        )
        return p

    def as_tenant(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--user",
            default="operator",
            help="act as this user of the local cluster (the tenant whose tasks these are; "
            "default operator); ignored when --url carries credentials",
        )
        return p

    def with_app(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument(
            *(["app"] if required else ["--app"]),
            metavar="MODULE[:ATTR]",
            help="your swarmhub.App (ATTR defaults to app), e.g. agents:app for agents.py",
        )
        p.add_argument(
            "--app-dir", type=Path, default=Path("."), help="folder to import the app from"
        )

    up = sub.add_parser("up", help="run the embedded local cluster in the foreground")
    up.add_argument(
        "--port",
        type=int,
        default=_default_port(),
        help="NATS client port (default: the port of SWARMHUB_NATS_URL, else 4222)",
    )
    up.add_argument("--data-dir", type=Path, default=Path(".data"), help="state and logs")
    up.add_argument("--workers", type=int, default=2, help="agent-workers to run")
    up.add_argument("--routers", type=int, default=1, help="task-routers to run")
    up.add_argument("--concurrency", type=int, default=16, help="tasks per worker at once")
    up.add_argument("--coordinators", type=int, default=1, help="1 leader + standbys")
    up.add_argument(
        "--cluster", type=int, default=1, choices=[1, 3], help="nats-server nodes (3 = R3 streams)"
    )
    up.add_argument(
        "--sync-always", action="store_true", help="fsync every JetStream write (slower, safer)"
    )
    up.add_argument(
        "--insecure",
        action="store_true",
        help="no users or permissions (debugging only: any local process may do anything)",
    )
    up.add_argument(
        "--metrics-port",
        type=int,
        metavar="BASE",
        help="serve /metrics, /healthz and /readyz from every process on ports BASE, BASE+1, ... "
        "(nats-server monitoring first) and write Prometheus file-SD targets to the data folder",
    )
    up.add_argument(
        "--observe",
        action="store_true",
        help="also run a local Prometheus with the shipped rules on those targets "
        "(needs the prometheus binary; implies --metrics-port 9400)",
    )
    up.add_argument("--prometheus-port", type=int, default=9090, help="for --observe (9090)")
    up.add_argument(
        "--agent-slots",
        type=int,
        default=4,
        help="credentials kept for workers started by `swarmhub worker` (default 4)",
    )
    up.add_argument(
        "--clients",
        type=int,
        default=1,
        help="client users, each a tenant that sees only its own tasks: client, client-2, ... "
        "(default 1)",
    )
    up.add_argument(
        "--tls",
        action="store_true",
        help="require TLS on the NATS client port (env SWARMHUB_TLS=1); uses SWARMHUB_TLS_CERT, "
        "_KEY and _CA, else the data folder's development certificates (made if missing)",
    )
    with_app(up, required=False)

    tls = sub.add_parser("tls", help="development TLS certificates")
    tls_sub = tls.add_subparsers(dest="tls_command", required=True)
    tls_init = tls_sub.add_parser(
        "init",
        help="make a development CA and server certificate in DATA_DIR/tls (development only)",
    )
    tls_init.add_argument("--data-dir", type=Path, default=Path(".data"), help="data folder")
    tls_init.add_argument(
        "--host",
        action="append",
        help="host name or IP the server certificate is for (repeatable; default 127.0.0.1 "
        "and localhost)",
    )
    tls_init.add_argument(
        "--client", action="append", default=[], metavar="NAME", help="also a client certificate"
    )
    tls_init.add_argument("--days", type=int, default=365, help="validity (default 365)")
    tls_init.add_argument("--force", action="store_true", help="replace existing files")

    worker = with_url(
        sub.add_parser(
            "worker",
            help="run an agent-worker offering your app's capabilities",
            description="Run an agent-worker with the capabilities of your swarmhub.App. On a "
            "local cluster it logs in with a free agent slot of the cluster's credentials.",
        )
    )
    with_app(worker, required=True)
    worker.add_argument("--concurrency", type=int, default=16, help="tasks at once (default 16)")
    worker.add_argument(
        "--capabilities", help="comma list: offer only these of the app's capabilities"
    )
    worker.add_argument(
        "--name", help="agent id (default: random, or the agent slot's on a local cluster)"
    )

    submit = as_tenant(with_url(sub.add_parser("submit", help="submit one task")))
    submit.add_argument("capability")
    submit.add_argument("--payload", type=json_object, default={}, help="JSON object")
    submit.add_argument("--priority", choices=[p.value for p in Priority], default="normal")
    submit.add_argument("--id", dest="task_id", help="task id (default: random)")
    submit.add_argument("--max-attempts", type=int, default=3)
    submit.add_argument("--timeout", type=float, default=60.0, help="seconds to --wait")
    submit.add_argument("--wait", action="store_true", help="wait for and print the result")
    submit.add_argument("--json", action="store_true", help="print JSON")

    cancel = as_tenant(
        with_url(
            sub.add_parser(
                "cancel", help="cancel a task (a queued one never runs, a running one is stopped)"
            )
        )
    )
    cancel.add_argument("task_id")
    cancel.add_argument("--json", action="store_true")

    result = as_tenant(with_url(sub.add_parser("result", help="print a stored result")))
    result.add_argument("task_id")
    result.add_argument("--json", action="store_true")

    status = with_url(sub.add_parser("status", help="list live agents and services"))
    status.add_argument("--json", action="store_true")

    from swarmhub import swarm_cli

    swarm_cli.add_parser(sub, with_url, json_object)

    _add_plugin_commands(sub)

    dead = sub.add_parser("dead", help="inspect and replay dead letters")
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    dead_list = with_url(dead_sub.add_parser("list", help="list dead letters"))
    dead_list.add_argument("--json", action="store_true")
    dead_list.add_argument("--limit", type=int, default=1000)
    replay = with_url(dead_sub.add_parser("replay", help="resubmit dead letters"))
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("task_id", nargs="?", help="task id (or stream sequence) to replay")
    which.add_argument("--all", action="store_true", help="replay every dead letter")
    return parser


def nats_url(text: str) -> str:
    """An argparse type: one or a comma list of nats:// (or tls://, ws://) server URLs."""
    for part in text.split(","):
        scheme, sep, rest = part.strip().rpartition("://")
        host = rest.rsplit("@", 1)[-1]
        if (sep and scheme not in ("nats", "tls", "ws", "wss")) or not host or "/" in host:
            raise argparse.ArgumentTypeError(
                f"{redact_url(part.strip())!r} is not a NATS server URL; "
                "expected e.g. nats://127.0.0.1:4222"
            )
    return text


def _print_result(result: TaskResult, as_json: bool) -> int:
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), sort_keys=True))
    else:
        line = (
            f"{result.task_id} {result.status.value} attempts={result.attempts} "
            f"agent={result.agent_id} total_ms={result.timings.total_ms:.1f}"
        )
        print(line)
        if result.error:
            print(f"error: {result.error.code.value}: {result.error.message}")
        else:
            print(json.dumps(result.output, sort_keys=True, default=str))
    return 0 if result.status.value == "succeeded" else 1


async def _submit(args: argparse.Namespace) -> int:
    from swarmhub.client import SwarmClient

    fields: dict[str, Any] = {
        "capability": args.capability,
        "payload": args.payload,
        "priority": args.priority,
        "max_attempts": args.max_attempts,
    }
    if args.task_id:
        fields["id"] = args.task_id
    try:
        task = Task(**fields)
    except ValueError as exc:
        from pydantic import ValidationError

        from swarmhub.codec import describe_validation_error

        msg = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
        print(f"error: invalid task: {msg}", file=sys.stderr)
        return 2
    async with SwarmClient.connect(args.url, role=args.user) as client:
        offered = {c for agent in await client.agents() for c in agent.capabilities}
        if task.capability not in offered:
            print(
                f"warning: no live agent offers {task.capability!r} now (offered: "
                f"{', '.join(sorted(offered)) or 'none'}); the task waits for one and fails "
                "no_agent if none comes.",
                file=sys.stderr,
            )
        if not args.wait:
            await client.submit(task)
            print(json.dumps({"task_id": task.id}) if args.json else task.id)
            return 0
        print(f"{task.id} queued", file=sys.stderr, flush=True)
        result = await client.run(
            task, timeout=args.timeout, check=False, on_progress=_print_progress
        )
        return _print_result(result, args.json)


def _print_progress(event: TaskProgress) -> None:
    """One stderr line per step of a task followed by `submit --wait`."""
    if event.state == "running":
        text = f"running on {event.agent_id} (attempt {event.attempt})"
    elif event.state == "retrying":
        why = f": {event.error.code.value}: {cut(event.error.message, 200)}" if event.error else ""
        text = f"attempt {event.attempt} failed{why}; retrying"
    else:
        text = "waiting for an agent that offers its capability"
    print(f"{event.task_id} {text}", file=sys.stderr, flush=True)


async def _cancel(args: argparse.Namespace) -> int:
    from swarmhub.client import SwarmClient

    async with SwarmClient.connect(args.url, role=args.user) as client:
        reply = await client.cancel(args.task_id)
    if args.json:
        print(json.dumps(reply.model_dump(mode="json"), sort_keys=True))
    elif reply.state == "cancelled":
        print(f"{args.task_id} cancelled")
    else:
        print(f"{args.task_id} had finished already: {reply.result.status.value}")
    return 0 if reply.state == "cancelled" else 1


async def _result(args: argparse.Namespace) -> int:
    from swarmhub.client import SwarmClient

    async with SwarmClient.connect(args.url, role=args.user) as client:
        result = await client.result(args.task_id)
    if result is None:
        print(f"error: no result stored for task {args.task_id}", file=sys.stderr)
        return 3
    return _print_result(result, args.json)


async def _status(args: argparse.Namespace) -> int:
    from swarmhub.client import SwarmClient
    from swarmhub.status import tasks_summary

    async with SwarmClient.connect(args.url, role="operator") as client:
        agents = await client.agents()
        infos = await client.discover("INFO")
        stats = {s["id"]: s for s in await client.discover("STATS")}
        dead = len(await client.dead_letters())
    tasks = {**tasks_summary(list(stats.values())), "dead_letters": dead}
    leaders = [
        st["id"]
        for st in stats.values()
        if st.get("name") == "swarm-coordinator" and (st.get("data") or {}).get("leader")
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "agents": [a.model_dump(mode="json") for a in agents],
                    "tasks": tasks,
                    "leader": leaders[0] if leaders else None,
                    "services": [{**i, "stats": stats.get(i["id"])} for i in infos],
                },
                sort_keys=True,
            )
        )
        return 0
    p95 = f"{tasks['p95_ms']:.1f} ms" if tasks["p95_ms"] is not None else "- (none finished)"
    results = ", ".join(f"{k} {v}" for k, v in sorted(tasks["by_status"].items())) or "none yet"
    print(f"tasks (results since the routers started: {results})")
    print(
        f"  p95 of the last {tasks['p95_window_s']:g} s: {p95}   held by routers: "
        f"{tasks['in_flight']}   waiting in the stream: {tasks['waiting']} (oldest "
        f"{tasks['oldest_age_s']:.0f} s)   dead letters: {dead}"
    )
    print(f"  coordinator leader: {leaders[0] if leaders else 'none'}")
    live = {
        st.get("data", {}).get("agent_id"): st.get("data", {})
        for st in stats.values()
        if st.get("name") == "agent-worker"
    }
    print(f"agents ({len(agents)} alive)")
    print(f"  {'AGENT':<20} {'STATE':<9} {'IN-FLIGHT':>9} {'CAPACITY':>8}  CAPABILITIES")
    for a in agents:
        in_flight = live.get(a.agent_id, {}).get("in_flight", a.in_flight)
        print(
            f"  {a.agent_id:<20} {a.state:<9} {in_flight:>9} {a.capacity:>8}  "
            f"{','.join(a.capabilities)}"
        )
    breakers = [
        (st["name"], b)
        for st in stats.values()
        for b in st.get("data", {}).get("breakers", {}).values()
    ]
    if breakers:
        print(f"circuit breakers ({len(breakers)})")
        for owner, b in sorted(breakers, key=lambda x: (x[0], x[1]["name"])):
            print(
                f"  {owner:<18} {b['name']:<32} {b['state']:<9} "
                f"failure_rate={b['failure_rate']:.0f}% calls={b['calls']}"
            )
    print(f"services ({len(infos)} answering $SRV.INFO)")
    print(
        f"  {'NAME':<18} {'ID':<24} {'VERSION':<8} {'REQUESTS':>8} {'ERRORS':>6} {'TASKS':>7}"
        "  ENDPOINTS"
    )
    for info in infos:
        st = stats.get(info["id"], {})
        eps = st.get("endpoints", [])
        reqs = sum(e.get("num_requests", 0) for e in eps)
        errs = sum(e.get("num_errors", 0) for e in eps)
        names = ",".join(e["name"] for e in info.get("endpoints", []))
        # A router's work is its stream, not its endpoints: its TASKS are results it recorded,
        # a worker's the attempts it completed.
        done = (st.get("data") or {}).get("completed", "-")
        print(
            f"  {info['name']:<18} {info['id']:<24} {info['version']:<8} "
            f"{reqs:>8} {errs:>6} {done:>7}  {names}"
        )
    return 0


async def _dead(args: argparse.Namespace) -> int:
    from swarmhub.client import SwarmClient

    async with SwarmClient.connect(args.url, role="operator") as client:
        letters = await client.dead_letters(limit=getattr(args, "limit", 100_000))
        if args.dead_command == "list":
            if args.json:
                rows = [
                    {"seq": seq, **letter.model_dump(mode="json", exclude={"body"})}
                    for seq, letter in letters
                ]
                print(json.dumps(rows, sort_keys=True))
                return 0
            print(f"dead letters ({len(letters)})")
            for seq, letter in letters:
                print(
                    f"  {seq:>6} {letter.task_id or '-':<34} {letter.capability:<12} "
                    f"attempts={letter.attempts} {letter.error.code.value}: {letter.error.message}"
                )
            return 0
        chosen = [
            (seq, letter)
            for seq, letter in letters
            if args.all or args.task_id in (letter.task_id, str(seq))
        ]
        if not chosen:
            print(f"error: no dead letter matches {args.task_id!r}", file=sys.stderr)
            return 3
        failures = 0
        for seq, letter in chosen:
            try:
                task = await client.replay(seq, letter)
            except ServiceError as exc:
                failures += 1
                print(f"error: {exc.message}", file=sys.stderr)
                continue
            print(f"replayed {letter.task_id} as {task.id}")
        return 1 if failures else 0


def _up(args: argparse.Namespace) -> int:
    from swarmhub.credentials import CREDENTIALS_FILE
    from swarmhub.embedded import ClusterConfig, LocalCluster
    from swarmhub.status import StatusLine

    tty = sys.stdout.isatty()

    def event(text: str) -> None:
        print(f"{CLEAR_LINE if tty else ''}[swarmhub] {text}", flush=True)

    app = load_app(args.app, args.app_dir) if args.app else None
    tls = _server_tls(args.data_dir.resolve()) if args.tls or TLSSettings().tls else None
    if tls is not None and tls.ca is not None:
        os.environ["SWARMHUB_TLS_CA"] = str(tls.ca)  # this process's own status connection
    cluster = LocalCluster(
        ClusterConfig(
            data_dir=args.data_dir.resolve(),
            port=args.port,
            workers=args.workers,
            routers=args.routers,
            worker_concurrency=args.concurrency,
            coordinators=args.coordinators,
            nats_nodes=args.cluster,
            sync_always=args.sync_always,
            insecure=args.insecure,
            agent_slots=args.agent_slots,
            clients=args.clients,
            app=args.app,
            app_dir=args.app_dir,
            metrics_port=args.metrics_port or (9400 if args.observe else None),
            tls=tls,
        ),
        on_event=event,
    )
    prometheus = None
    if app is not None:
        event(f"workers run app {app.name!r}: capabilities {', '.join(app.names())}")
    stop = {"requested": False}

    def on_signal(signum: int, _: Any) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster.start()
        event(f"NATS URL: {cluster.server_url}   logs: {args.data_dir / 'logs'}")
        if cluster.credentials is not None:
            event(
                f"per-role credentials: {args.data_dir / CREDENTIALS_FILE} (mode 0600; the CLI "
                "and SwarmClient find them from this folder or SWARMHUB_DATA_DIR)"
            )
        else:
            event("--insecure: no users or permissions; any local process can do anything")
        if tls is not None:
            event(
                f"TLS required on the client port; clients trust {tls.ca or 'the system CAs'} "
                "(found in the data folder, or set SWARMHUB_TLS_CA)"
            )
        if cluster.scrape_targets:
            ports = sorted(
                int(t.rsplit(":", 1)[1]) for ts in cluster.scrape_targets.values() for t in ts
            )
            event(
                f"/metrics, /healthz, /readyz on 127.0.0.1:{ports[0]}-{ports[-1]}; "
                f"nats monitoring on {cluster.nats.monitor_port}; "
                f"Prometheus file-SD targets in {cluster.targets_dir}"
            )
        if args.observe:
            from swarmhub.observe import LocalPrometheus

            prometheus = LocalPrometheus(
                args.data_dir.resolve() / "prometheus", cluster.targets_dir, args.prometheus_port
            ).start()
            event(f"Prometheus: {prometheus.url} ({len(prometheus.rules)} rule files)")
        example = app.names()[0] if app is not None else "echo"
        payload = "{}" if app is not None else '{"text": "hi"}'
        event(
            f"try: swarmhub submit {example} --payload '{payload}' --wait "
            f"--url {cluster.server_url}"
        )
        line = StatusLine(cluster.url)
        while not stop["requested"]:
            text = line.poll()
            if tty:
                print(f"{CLEAR_LINE}{text}", end="", flush=True)
            else:
                print(text, flush=True)
            deadline = time.monotonic() + (1.0 if tty else 5.0)
            while not stop["requested"] and time.monotonic() < deadline:
                time.sleep(0.1)
        line.close()
    finally:
        event("stopping (reverse order)...")
        started = time.monotonic()
        if prometheus is not None:
            prometheus.stop()
        cluster.stop()
        event(f"stopped in {time.monotonic() - started:.1f} s")
    return 0


def _server_tls(data_dir: Path) -> ServerTLS:
    """The server's TLS files: SWARMHUB_TLS_CERT/_KEY/_CA, else the data folder's dev files."""
    from swarmhub.tls import dev_server_tls, make_dev_certs

    settings = TLSSettings()
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            raise TLSError("Set both SWARMHUB_TLS_CERT and SWARMHUB_TLS_KEY, or neither.")
        ca = Path(settings.tls_ca).resolve() if settings.tls_ca else None
        return ServerTLS(Path(settings.tls_cert).resolve(), Path(settings.tls_key).resolve(), ca)
    made = make_dev_certs(data_dir)
    if made:
        print(f"[swarmhub] made development TLS certificates in {made[0].parent}", flush=True)
    return dev_server_tls(data_dir)


def _tls(args: argparse.Namespace) -> int:
    """`swarmhub tls init`: a development CA and server (and client) certificates."""
    from swarmhub.tls import DEFAULT_HOSTS, make_dev_certs, tls_dir

    folder = tls_dir(args.data_dir)
    made = make_dev_certs(
        args.data_dir,
        hosts=args.host or DEFAULT_HOSTS,
        clients=args.client,
        days=args.days,
        force=args.force,
    )
    for path in made:
        print(f"wrote {path}")
    if not made:
        print(f"kept the existing files in {folder} (--force to replace them)")
    print(
        f"development only: the CA key is in {folder}; start with `swarmhub up --tls "
        f"--data-dir {args.data_dir}`"
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    """Check the app loads, then become `python -m swarmhub.agent_worker` running it (same PID)."""
    from swarmhub.credentials import claim_agent_slot, with_user

    app = load_app(args.app, args.app_dir)
    if args.capabilities:
        app.registry.subset([c.strip() for c in args.capabilities.split(",") if c.strip()])
    env = {
        **os.environ,
        "SWARMHUB_APP": args.app,
        "SWARMHUB_APP_DIR": str(args.app_dir.resolve()),
        "SWARMHUB_CONCURRENCY": str(args.concurrency),
        "SWARMHUB_NATS_URL": args.url,
    }
    if args.capabilities:
        env["SWARMHUB_CAPABILITIES"] = args.capabilities
    if args.name:
        env["SWARMHUB_AGENT_ID"] = check_token(args.name, "agent name")
    slot = None if "@" in args.url else claim_agent_slot()
    if slot is not None:
        user, lock = slot
        if args.name and args.name != user.agent_id:
            print(
                "error: on a local cluster with credentials an agent's id is its slot's "
                f"({user.agent_id}); leave out --name or pass a --url with your own user.",
                file=sys.stderr,
            )
            return 2
        os.set_inheritable(lock, True)  # the worker keeps the slot for as long as it runs
        env["SWARMHUB_NATS_URL"] = with_user(args.url, user)
        env["SWARMHUB_AGENT_ID"] = user.agent_id or ""
    print(
        f"[swarmhub] worker for app {app.name!r} ({', '.join(app.names())}) at "
        f"{redact_url(args.url)}" + (f" as agent {env['SWARMHUB_AGENT_ID']}" if slot else ""),
        file=sys.stderr,
        flush=True,
    )
    os.execve(sys.executable, [sys.executable, "-m", "swarmhub.agent_worker"], env)
    return 0  # not reached


def _exit_code(exc: ServiceError) -> int:
    """The documented exit code of an error family."""
    if isinstance(exc, Unavailable):
        return 4
    if isinstance(exc, TimedOut):
        return 5
    if isinstance(exc, Rejected):
        return 2
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `swarmhub` command."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "tls":
            return _tls(args)
        plugin = getattr(args, "plugin_handler", None)
        if plugin is not None:
            return int(plugin(args))
        if args.command == "swarm":
            from swarmhub import swarm_cli

            return asyncio.run(swarm_cli.main(args))
        handler = {
            "submit": _submit,
            "cancel": _cancel,
            "result": _result,
            "status": _status,
            "dead": _dead,
        }[args.command]
        return asyncio.run(handler(args))
    except ServiceError as exc:
        print(f"error: {exc.code.value}: {cut(exc.message, 500)}", file=sys.stderr)
        return _exit_code(exc)
    except (AppError, NoFreeSlot, ServerStartError, ObserveError, TLSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = _missing_extra(exc)
        if extra is None:
            raise
        print(
            f"error: `swarmhub {args.command}` needs the {extra!r} extra: "
            f"pip install 'swarmhub[{extra}]' (module {exc.name!r} is missing)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("SWARMHUB_DEBUG"):
            raise
        print(
            f"error: {type(exc).__name__}: {cut(scrub_credentials(str(exc)), 500)} "
            "(set SWARMHUB_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
