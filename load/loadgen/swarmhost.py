"""Many real agents in one process: `python -m swarmhub.loadgen.swarmhost --agents N --url URL`.

Runs N `swarmhub.agent_worker.service.AgentWorker` instances on one event loop, each a whole
Service with its own agent id and its own NATS connection (a Service owns its connection: it
drains and closes it on shutdown). Prints one line on stdout once every agent is registered, and
drains every agent on SIGTERM or SIGINT (each leaves the swarm, finishes its in-flight work,
closes).

How the agents log in:
- a URL with a user (`nats://user:pass@host:port`): every agent uses it; that user needs a
  worker role not scoped to one agent id (or the server is open);
- a URL without one, and a local cluster's credentials file (`--data-dir`, else
  `SWARMHUB_DATA_DIR`, else `./.data`): each agent claims a free agent slot of that cluster
  (its own user, scoped to the slot's agent id; `ClusterConfig.agent_slots` /
  `swarmhub up --agent-slots N` makes enough), held by a lock until this process ends;
- neither: an open server; agents get ids `<--id-prefix>-<n>`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from swarmhub import telemetry
from swarmhub.agent_worker.service import AgentWorker
from swarmhub.config import (
    BusSettings,
    RuntimeSettings,
    TelemetrySettings,
    WorkerSettings,
    redact_url,
)
from swarmhub.credentials import (
    AGENT_SLOT,
    DEFAULT_DATA_DIR,
    NoFreeSlot,
    find,
    lock_slot,
    with_user,
)
from swarmhub.runtime import run_loop

READY = "swarmhost ready:"
"""Start of the one line printed on stdout once every agent of the process is registered."""
EXIT_FAILED = 1


@dataclass(frozen=True)
class Login:
    """Who one hosted agent is: its agent id (None: AgentWorker picks one) and its URL."""

    agent_id: str | None
    url: str


def claim_slots(count: int, data_dir: Path, url: str) -> list[tuple[Login, int]] | None:
    """`count` free agent slots of the local cluster in `data_dir`, each logging in to `url` as
    its slot's user, and the locks that hold them.

    None when no credentials file is there. The same locks as `swarmhub worker` takes
    (`credentials.claim_agent_slot`: an flock on `<data dir>/agents/<agent id>.lock`, freed by
    the kernel however this process ends), taken in one pass over the slots.
    """
    found = find(data_dir)
    if found is None:
        return None
    claimed: list[tuple[Login, int]] = []
    for user in (u for u in found.users if u.role == AGENT_SLOT):
        if len(claimed) == count:
            break
        fd = lock_slot(data_dir, user)
        if fd is not None:
            claimed.append((Login(user.agent_id, with_user(url, user)), fd))
    if len(claimed) < count:
        for _, fd in claimed:
            os.close(fd)
        raise NoFreeSlot(
            f"Only {len(claimed)} of {count} agent slots of the local cluster in {data_dir} are "
            "free; start it with more (ClusterConfig.agent_slots, `swarmhub up --agent-slots N`)."
        )
    return claimed


def logins(url: str, count: int, data_dir: Path, id_prefix: str) -> tuple[list[Login], list[int]]:
    """How each of `count` agents logs in, and the slot locks this process must keep open."""
    if "@" in url:
        return [Login(f"{id_prefix}-{i}", url) for i in range(count)], []
    claimed = claim_slots(count, data_dir, url)
    if claimed is None:
        return [Login(f"{id_prefix}-{i}", url) for i in range(count)], []
    return [login for login, _ in claimed], [fd for _, fd in claimed]


async def host(agents: list[AgentWorker], *, start_parallel: int, ready_timeout: float) -> int:
    """Start every agent, say when all are registered, serve until a signal, then drain all."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    started_at = time.monotonic()
    gate = asyncio.Semaphore(start_parallel)

    async def start(agent: AgentWorker) -> None:
        async with gate:
            if stop.is_set():
                return
            await agent.start()

    async def first_stop() -> None:
        # A signal, or an agent stopping by itself (its connection closed for good).
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, *(a.stopping for a in agents))]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def all_registered() -> None:
        outcomes = await asyncio.gather(*map(start, agents), return_exceptions=True)
        errors = [r for r in outcomes if isinstance(r, BaseException)]
        if errors:
            print(
                f"swarmhost: {len(errors)} agents failed to start: {errors[0]!r}",
                file=sys.stderr,
                flush=True,
            )
            return
        await asyncio.gather(*(a.registered.wait() for a in agents))

    exit_code = EXIT_FAILED
    stopped = asyncio.ensure_future(first_stop())
    ready = asyncio.ensure_future(all_registered())
    try:
        await asyncio.wait(
            [ready, stopped], timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready.done() and all(a.registered.is_set() for a in agents):
            print(
                f"{READY} {len(agents)} agents registered in "
                f"{time.monotonic() - started_at:.2f} s (pid {os.getpid()})",
                flush=True,
            )
            await stopped
            exit_code = 0 if stop.is_set() else EXIT_FAILED
        elif not stopped.done():
            left = sum(1 for a in agents if not a.registered.is_set())
            print(
                f"swarmhost: {left} of {len(agents)} agents not registered after "
                f"{ready_timeout:g} s; stopping",
                file=sys.stderr,
                flush=True,
            )
    finally:
        stop.set()
        stopped.cancel()
        ready.cancel()
        with contextlib.suppress(BaseException):
            await ready  # agents still connecting are cut off
        # Every agent, started or cut off while starting: shutdown skips what never began.
        await asyncio.gather(*(a.shutdown() for a in agents), return_exceptions=True)
    return max([exit_code, *(a.exit_code for a in agents)])


def build_parser() -> argparse.ArgumentParser:
    """Options of `python -m swarmhub.loadgen.swarmhost`."""
    p = argparse.ArgumentParser(prog="python -m swarmhub.loadgen.swarmhost", description=__doc__)
    p.add_argument("--agents", type=int, required=True, help="agents in this process")
    p.add_argument("--url", required=True, help="NATS URL (with a user, or a local cluster's)")
    p.add_argument("--capabilities", default="echo", help="comma list offered by every agent")
    p.add_argument("--concurrency", type=int, default=4, help="tasks each agent runs at once")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="local cluster folder whose agent slots to claim (default: SWARMHUB_DATA_DIR, "
        "else ./.data)",
    )
    p.add_argument("--id-prefix", default=f"host{os.getpid()}", help="agent ids on an open server")
    p.add_argument("--start-parallel", type=int, default=20, help="agents connecting at once")
    p.add_argument("--ready-timeout", type=float, default=180.0)
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agents until SIGTERM; the exit code is non-zero when any agent failed."""
    args = build_parser().parse_args(argv)
    if args.agents < 1:
        print("error: --agents must be at least 1", file=sys.stderr)
        return 2
    telemetry_settings = TelemetrySettings(log_level=args.log_level)
    telemetry.configure_logging("agent-worker", telemetry_settings)
    data_dir = args.data_dir or Path(os.environ.get("SWARMHUB_DATA_DIR") or DEFAULT_DATA_DIR)
    try:
        who, locks = logins(args.url, args.agents, data_dir, args.id_prefix)
    except NoFreeSlot as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    runtime_settings = RuntimeSettings()
    print(
        f"swarmhost: {args.agents} agents at {redact_url(args.url)}"
        + (f" on {len(locks)} agent slots of {data_dir}" if locks else ""),
        file=sys.stderr,
        flush=True,
    )

    async def run() -> int:
        agents = [
            AgentWorker(
                settings=WorkerSettings(
                    agent_id=login.agent_id,
                    concurrency=args.concurrency,
                    capabilities=args.capabilities,
                ),
                bus_settings=BusSettings(nats_url=login.url),
                telemetry_settings=telemetry_settings,
                runtime_settings=runtime_settings,
            )
            for login in who
        ]
        return await host(
            agents, start_parallel=args.start_parallel, ready_timeout=args.ready_timeout
        )

    codes: list[int] = []

    async def main_coro() -> None:
        codes.append(await run())

    try:
        run_loop(main_coro(), runtime_settings.event_loop)
    finally:
        for fd in locks:
            os.close(fd)
    return codes[0] if codes else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
