"""A swarm of real agents.

`python -m swarmhub.loadgen.thousand [--agents 1000] [--hosts 10] [--json F]`. Unlike
`swarmhub.loadgen.convergence` (stand-in registrations and heartbeats sent by one client), every
agent here is a real `AgentWorker` running the worker code, hosted `--agents / --hosts` per
process by `swarmhub.loadgen.swarmhost`, each with its own NATS connection and its own scoped
user (an agent slot of the cluster's credentials). Steps, each bounded in time:

1. start an embedded cluster (nats-server with per-role users, coordinator, cache, routers; no
   workers of its own, `--agents` agent slots), then the host processes;
2. wait until the registry (KV `hub_agents`, watched) and every router's view ($SRV.STATS) hold
   every agent: the registration time; then measure router and coordinator CPU while idle;
3. send `--tasks` echo tasks, `--in-flight` at a time: tasks/s, router CPU µs per task, tasks
   per agent (the evenness), attempts (a retry would mean an agent was asked beyond capacity);
4. send `--kill-tasks` more and, once a fifth of them are done, SIGKILL `--kill-hosts` hosts:
   how long until the registry and every router dropped their agents, and whether every task
   still ends with exactly one succeeded result; then `--after-tasks` more, none of which may
   go to a dead agent;
5. SIGTERM the remaining hosts (graceful drain) and stop the cluster, every process by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from nats.aio.msg import Msg

from swarmhub import codec, subjects
from swarmhub.client import SwarmClient, result_of
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from swarmhub.errors import ServiceError
from swarmhub.loadgen.swarmhost import READY
from swarmhub.schemas import AgentRecord, ResultStatus, Task, TaskResult

SUBMITTERS = 16
"""Coroutines publishing tasks at once (each waits for JetStream's ack)."""


@dataclass
class Plan:
    """The shape of one run."""

    agents: int = 1000
    hosts: int = 10
    concurrency: int = 4  # tasks one agent runs at once (its capacity)
    routers: int = 1
    tasks: int = 5000
    in_flight: int = 256  # tasks submitted and not yet finished, at most
    kill_hosts: int = 1
    kill_tasks: int = 2000
    after_tasks: int = 500
    idle_window: float = 3.0  # seconds of idle CPU measured once all agents are in (0: skip)
    step_timeout: float = 180.0  # the longest any one step may take
    attempt_timeout: float = 10.0  # per attempt of each task


def _split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def until(
    predicate: Callable[[], Awaitable[bool] | bool], timeout: float, what: str
) -> float:
    """Seconds until `predicate` holds, polled every 50 ms; TimeoutError naming `what`."""
    started = time.monotonic()
    while True:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


class Hosts:
    """The swarmhost processes: started, watched, killed and stopped by PID."""

    def __init__(self, url: str, data_dir: Path, plan: Plan) -> None:
        self.url = url
        self.data_dir = data_dir
        self.plan = plan
        self.log_dir = data_dir / "hosts"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sizes = _split(plan.agents, plan.hosts)
        self.killed: list[int] = []

    def start(self) -> None:
        """Start every host (each claims its agents' slots from the cluster's data folder)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SWARMHUB_DATA_DIR": str(self.data_dir)}
        for index, size in enumerate(self.sizes):
            argv = [
                sys.executable,
                "-m",
                "swarmhub.loadgen.swarmhost",
                "--agents",
                str(size),
                "--url",
                self.url,
                "--data-dir",
                str(self.data_dir),
                "--capabilities",
                "echo",
                "--concurrency",
                str(self.plan.concurrency),
            ]
            with (
                (self.log_dir / f"host-{index}.out").open("wb") as out,
                (self.log_dir / f"host-{index}.log").open("wb") as err,
            ):
                self.procs.append(
                    subprocess.Popen(
                        argv,
                        env=env,
                        stdout=out,
                        stderr=err,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )

    def pids(self) -> list[int]:
        """PIDs of the hosts still running."""
        return [p.pid for p in self.procs if p.poll() is None]

    def ready(self) -> int:
        """How many hosts said every one of their agents is registered."""
        return sum(
            READY in (self.log_dir / f"host-{i}.out").read_text(errors="replace")
            for i in range(len(self.procs))
        )

    def own_times(self) -> list[float]:
        """Seconds each host took, by its own ready line, from its first connect to the last
        of its agents registered (Python start-up excluded)."""
        found = (
            re.search(r"registered in ([\d.]+) s", (self.log_dir / f"host-{i}.out").read_text())
            for i in range(len(self.procs))
        )
        return [float(m.group(1)) for m in found if m]

    def check_alive(self) -> None:
        """Raise if a host not killed on purpose has exited."""
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None and proc.pid not in self.killed:
                tail = (self.log_dir / f"host-{index}.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"host {index} (pid {proc.pid}) exited: {tail}")

    def kill(self, count: int) -> list[int]:
        """SIGKILL the first `count` hosts; their PIDs."""
        victims = self.procs[:count]
        for proc in victims:
            self.killed.append(proc.pid)
            proc.send_signal(signal.SIGKILL)
        for proc in victims:
            proc.wait()
        return [p.pid for p in victims]

    def stop(self, timeout: float = 20.0) -> list[int | None]:
        """SIGTERM every live host by PID (they drain), SIGKILL stragglers; exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return [None if p.pid in self.killed else p.returncode for p in self.procs]


class Registry:
    """The agent registry as a live dict, from a watch of the KV bucket (as routers do)."""

    def __init__(self, client: SwarmClient) -> None:
        self.client = client
        self.agents: dict[str, AgentRecord] = {}
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None

    async def start(self, timeout: float) -> None:
        """Watch the bucket (waiting for the coordinator to make it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kv = await self.client.bus.js.key_value(subjects.AGENTS_BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self._watcher = await kv.watchall()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for entry in self._watcher:
            if entry is None:
                continue
            if entry.operation in ("DEL", "PURGE"):
                self.agents.pop(entry.key, None)
            else:
                with contextlib.suppress(ServiceError):
                    self.agents[entry.key] = codec.decode(entry.value or b"", AgentRecord)

    async def stop(self) -> None:
        """End the watch."""
        if self._watcher is not None:
            with contextlib.suppress(Exception):
                await self._watcher.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


class Results:
    """Every result event, counted per task, releasing a submit window slot per finished task."""

    def __init__(self, client: SwarmClient) -> None:
        self.client = client
        self.first: dict[str, TaskResult] = {}
        self.events: Counter[str] = Counter()
        self.arrived = asyncio.Event()
        self._open: set[str] = set()
        self._window: asyncio.Semaphore | None = None
        self._sub: Any = None

    async def start(self) -> None:
        """Subscribe to every result event of the client's tenant."""
        self._sub = await self.client.bus.nc.subscribe(
            subjects.tenant_results(self.client.tenant), cb=self._on
        )
        await self.client.bus.nc.flush()

    async def _on(self, msg: Msg) -> None:
        result = result_of(msg)
        if result is None:
            return
        self.events[result.task_id] += 1
        self.first.setdefault(result.task_id, result)
        if result.task_id in self._open:
            self._open.discard(result.task_id)
            if self._window is not None:
                self._window.release()
        self.arrived.set()

    async def run(self, tasks: list[Task], in_flight: int, timeout: float) -> float:
        """Submit `tasks`, at most `in_flight` unfinished at once; seconds until all finished."""
        self._window = window = asyncio.Semaphore(in_flight)
        self._open = {t.id for t in tasks}
        todo = iter(tasks)
        started = time.monotonic()

        async def submitter() -> None:
            for task in todo:
                await window.acquire()
                await self.client.submit(task)

        polled = [started]

        async def finished() -> bool:
            missing = [t.id for t in tasks if t.id not in self.first]
            now = time.monotonic()
            if missing and now - started > timeout / 2 and now - polled[0] > 2.0:
                polled[0] = now
                for task_id in missing[:200]:  # an event missed: read the stored result
                    stored = await self.client.result(task_id)
                    if stored is not None:
                        self.first.setdefault(task_id, stored)
            return not missing

        async with asyncio.timeout(timeout):
            await asyncio.gather(*(submitter() for _ in range(SUBMITTERS)))
        await until(finished, max(1.0, timeout - (time.monotonic() - started)), "task results")
        return time.monotonic() - started

    def done(self, tasks: list[Task]) -> int:
        """How many of `tasks` have a result."""
        return sum(1 for t in tasks if t.id in self.first)

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._sub is not None:
            await self._sub.unsubscribe()


async def router_views(client: SwarmClient) -> list[int]:
    """Agents in each router's view ($SRV.STATS)."""
    stats = await client.discover("STATS", "task-router", wait=0.3)
    return [int((s.get("data") or {}).get("agents", 0)) for s in stats]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


@dataclass
class Roles:
    """PIDs by role, for CPU accounting."""

    router: list[int]
    coordinator: list[int]
    nats: list[int]
    cache: list[int]
    hosts: list[int]

    @classmethod
    def of(cls, cluster: LocalCluster, hosts: Hosts) -> Roles:
        pids = cluster.pids()

        def named(part: str) -> list[int]:
            return [pid for name, pid in pids.items() if part in name]

        return cls(
            named("task-router"), named("swarm-coordinator"), named("nats"), named("cache"), []
        ).with_hosts(hosts)

    def with_hosts(self, hosts: Hosts) -> Roles:
        self.hosts = hosts.pids()
        return self

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each role, and of this process."""
        out = {role: cpu_seconds(pids) for role, pids in asdict(self).items()}
        out["loadgen"] = cpu_seconds([os.getpid()])
        return out


def per_task_us(before: dict[str, float], after: dict[str, float], tasks: int) -> dict[str, float]:
    """CPU µs per task of each role between two readings."""
    return {role: (after[role] - before[role]) / tasks * 1e6 for role in before}


def spread(counts: dict[str, int]) -> dict[str, float]:
    """Tasks per agent: min, median, max, mean, and how many agents got none."""
    values = sorted(counts.values())
    return {
        "agents": len(values),
        "min": values[0],
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "p99": values[min(len(values) - 1, int(len(values) * 0.99))],
        "max": values[-1],
        "none": sum(1 for v in values if v == 0),
    }


@dataclass
class Outcome:
    """What one run measured, and the raw facts a test checks."""

    plan: Plan
    figures: dict[str, Any] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)  # agent ids seen in registry and routers
    per_agent: dict[str, int] = field(default_factory=dict)  # step 3 tasks by agent
    victims: set[str] = field(default_factory=set)  # agents of the killed hosts
    left_after_kill: set[str] = field(default_factory=set)  # registry after convergence
    router_views_after_kill: list[int] = field(default_factory=list)
    batches: dict[str, list[Task]] = field(default_factory=dict)
    results: dict[str, TaskResult] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    host_exit_codes: list[int | None] = field(default_factory=list)

    def unfinished(self, batch: str) -> list[str]:
        """Tasks of `batch` with no recorded final result (lost)."""
        return [t.id for t in self.batches[batch] if t.id not in self.results]

    def duplicated(self, batch: str) -> list[str]:
        """Tasks of `batch` whose final result was announced more than once."""
        return [t.id for t in self.batches[batch] if self.events.get(t.id, 0) > 1]

    def failed(self, batch: str) -> list[TaskResult]:
        """Final results of `batch` other than succeeded."""
        return [
            r
            for t in self.batches[batch]
            if (r := self.results.get(t.id)) is not None and r.status is not ResultStatus.SUCCEEDED
        ]

    def as_json(self) -> dict[str, Any]:
        """The plan and the figures."""
        return {"plan": asdict(self.plan), "figures": self.figures}


def echo_tasks(count: int, batch: str, plan: Plan) -> list[Task]:
    """`count` echo tasks, each with its own payload."""
    return [
        Task(
            capability="echo",
            payload={"batch": batch, "i": i},
            attempt_timeout=plan.attempt_timeout,
        )
        for i in range(count)
    ]


@contextlib.contextmanager
def swarm_cluster(plan: Plan, data_dir: Path | None = None) -> Iterator[LocalCluster]:
    """An embedded cluster for `plan`: per-role users, `plan.agents` agent slots, no workers of
    its own; stopped (every process by PID) and its folder removed after."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="swarmhub-thousand-"))
    cluster = LocalCluster(
        ClusterConfig(
            data_dir=folder,
            port=free_port(),
            workers=0,
            routers=plan.routers,
            agent_slots=plan.agents,
        ),
        on_event=lambda text: print(f"[cluster] {text}", file=sys.stderr, flush=True),
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if data_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


async def measure(
    cluster: LocalCluster, plan: Plan, say: Callable[[str], None] = lambda text: None
) -> Outcome:
    """Run the steps of the module docstring on a started `swarm_cluster`."""
    out = Outcome(plan)
    fig = out.figures
    hosts = Hosts(cluster.server_url, cluster.config.data_dir, plan)
    async with SwarmClient.connect(cluster.url, role="operator") as client:
        registry = Registry(client)
        results = Results(client)
        try:
            await registry.start(plan.step_timeout)
            await results.start()
            await until(lambda: _routers_up(client, plan.routers), plan.step_timeout, "the routers")

            # 2. registration
            say(f"starting {plan.hosts} hosts for {plan.agents} agents")
            started = time.monotonic()
            hosts.start()
            roles = Roles.of(cluster, hosts)

            def in_registry() -> bool:
                hosts.check_alive()
                return len(registry.agents) >= plan.agents

            fig["registry_s"] = await until(in_registry, plan.step_timeout, "the registry")

            async def in_routers() -> bool:
                views = await router_views(client)
                return len(views) == plan.routers and min(views) >= plan.agents

            await until(in_routers, plan.step_timeout, "every router's view")
            fig["routers_s"] = time.monotonic() - started
            await until(lambda: hosts.ready() == plan.hosts, plan.step_timeout, "host ready lines")
            fig["hosts_ready_s"] = time.monotonic() - started
            fig["host_own_register_s"] = max(hosts.own_times(), default=None)
            out.registered = set(registry.agents)
            fig["registered"] = len(out.registered)
            fig["host_pids"] = len({r.pid for r in registry.agents.values()})
            say(f"{len(out.registered)} agents registered in {fig['routers_s']:.1f} s")
            if plan.idle_window > 0:
                before = roles.cpu()
                await asyncio.sleep(plan.idle_window)  # a measurement window, not a wait
                after = roles.cpu()
                fig["idle_cpu_percent"] = {
                    role: (after[role] - before[role]) / plan.idle_window * 100 for role in before
                }

            # 3. evenly, within capacity
            batch = out.batches["even"] = echo_tasks(plan.tasks, "even", plan)
            say(f"sending {plan.tasks} echo tasks, {plan.in_flight} in flight")
            before = roles.cpu()
            elapsed = await results.run(batch, plan.in_flight, plan.step_timeout)
            after = roles.cpu()
            fig["tasks"] = plan.tasks
            fig["tasks_s"] = elapsed
            fig["tasks_per_s"] = plan.tasks / elapsed
            fig["cpu_us_per_task"] = per_task_us(before, after, plan.tasks)
            counts = dict.fromkeys(out.registered, 0)
            for task in batch:
                result = results.first.get(task.id)
                if result is not None and result.agent_id is not None:
                    counts[result.agent_id] = counts.get(result.agent_id, 0) + 1
            out.per_agent = counts
            fig["per_agent"] = spread(counts)
            fig["retried"] = sum(
                1 for t in batch if t.id in results.first and results.first[t.id].attempts > 1
            )

            # 4. a host dies under load
            batch = out.batches["kill"] = echo_tasks(plan.kill_tasks, "kill", plan)
            running = asyncio.create_task(results.run(batch, plan.in_flight, plan.step_timeout))
            await until(
                lambda: results.done(batch) >= plan.kill_tasks // 5 or running.done(),
                plan.step_timeout,
                "a fifth of the kill batch",
            )
            pids = set(hosts.pids()[: plan.kill_hosts])
            out.victims = {a for a, r in registry.agents.items() if r.pid in pids}
            killed_at = time.monotonic()
            hosts.kill(plan.kill_hosts)
            say(f"killed {plan.kill_hosts} hosts holding {len(out.victims)} agents")
            expected = len(out.registered) - len(out.victims)
            fig["killed_agents"] = len(out.victims)
            fig["kill_registry_s"] = await until(
                lambda: not out.victims & registry.agents.keys(),
                plan.step_timeout,
                "the registry to drop the killed agents",
            )

            async def routers_dropped() -> bool:
                return max(await router_views(client)) <= expected

            await until(routers_dropped, plan.step_timeout, "the routers to drop them")
            fig["kill_routers_s"] = time.monotonic() - killed_at
            fig["kill_batch_s"] = await running
            out.left_after_kill = set(registry.agents)
            out.router_views_after_kill = await router_views(client)
            fig["kill_retried"] = sum(
                1 for t in batch if t.id in results.first and results.first[t.id].attempts > 1
            )

            # ... and later tasks go to live agents only
            batch = out.batches["after"] = echo_tasks(plan.after_tasks, "after", plan)
            fig["after_s"] = await results.run(batch, plan.in_flight, plan.step_timeout)
            fig["after_on_dead"] = sum(
                1
                for t in batch
                if t.id in results.first and results.first[t.id].agent_id in out.victims
            )
        finally:
            await registry.stop()
            await results.stop()
            # 5. drain the rest (blocking waits run on a thread: the loop stays responsive)
            stopping = time.monotonic()
            out.host_exit_codes = await asyncio.to_thread(hosts.stop)
            fig["drain_s"] = time.monotonic() - stopping
        out.results = dict(results.first)
        out.events = dict(results.events)
        fig["outcomes"] = {
            name: {
                "tasks": len(out.batches[name]),
                "lost": len(out.unfinished(name)),
                "duplicated": len(out.duplicated(name)),
                "failed": len(out.failed(name)),
            }
            for name in out.batches
        }
        fig["failures"] = sorted(
            {
                f"{r.error.code.value}: {r.error.message[:120]}"
                for n in out.batches
                for r in out.failed(n)
                if r.error is not None
            }
        )[:5]
        fig["host_exit_codes"] = out.host_exit_codes
    return out


async def _routers_up(client: SwarmClient, count: int) -> bool:
    return len(await router_views(client)) >= count


def table(outcome: Outcome) -> str:
    """The compact report."""
    f, p = outcome.figures, outcome.plan
    spread_ = f.get("per_agent", {})
    cpu = f.get("cpu_us_per_task", {})
    idle = f.get("idle_cpu_percent", {})
    rows = [
        ("agents / hosts / capacity", f"{p.agents} / {p.hosts} / {p.concurrency} each"),
        ("registered (registry)", f"{f.get('registered')} from {f.get('host_pids')} PIDs"),
        ("registration: registry", f"{f.get('registry_s', 0):.1f} s"),
        ("registration: every router", f"{f.get('routers_s', 0):.1f} s"),
        (
            "  of which in a host (max)",
            f"{f.get('host_own_register_s') or 0:.1f} s after its start-up",
        ),
        (
            "idle CPU % router / coord.",
            f"{idle.get('router', 0):.1f} / {idle.get('coordinator', 0):.1f}",
        ),
        ("idle CPU % nats / hosts", f"{idle.get('nats', 0):.1f} / {idle.get('hosts', 0):.1f}"),
        ("tasks, in flight", f"{f.get('tasks')} echo, {p.in_flight}"),
        ("tasks/s", f"{f.get('tasks_per_s', 0):.0f}"),
        ("router CPU µs/task", f"{cpu.get('router', 0):.0f}"),
        (
            "CPU µs/task coord/nats/hosts",
            f"{cpu.get('coordinator', 0):.0f} / {cpu.get('nats', 0):.0f} / "
            f"{cpu.get('hosts', 0):.0f}",
        ),
        (
            "tasks/agent min/med/max",
            f"{spread_.get('min')} / {spread_.get('median')} / {spread_.get('max')} "
            f"(mean {spread_.get('mean', 0):.1f}, p99 {spread_.get('p99')})",
        ),
        ("agents with no task", f"{spread_.get('none')}"),
        ("tasks retried (busy/kill)", f"{f.get('retried')} / {f.get('kill_retried')}"),
        ("killed agents", f"{f.get('killed_agents')}"),
        (
            "dropped: registry / routers",
            f"{f.get('kill_registry_s', 0):.1f} s / {f.get('kill_routers_s', 0):.1f} s",
        ),
        *(
            (
                f"batch {name}: lost/dup/failed",
                f"{o['lost']} / {o['duplicated']} / {o['failed']} of {o['tasks']}",
            )
            for name, o in f.get("outcomes", {}).items()
        ),
        ("after kill on dead agents", f"{f.get('after_on_dead')}"),
        (
            "graceful drain of the rest",
            f"{f.get('drain_s', 0):.1f} s, exits {f.get('host_exit_codes')}",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def build_parser() -> argparse.ArgumentParser:
    """Options of `python -m swarmhub.loadgen.thousand`."""
    plan = Plan()
    p = argparse.ArgumentParser(
        prog="python -m swarmhub.loadgen.thousand",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, value in asdict(plan).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    p.add_argument("--json", type=Path, metavar="FILE", help="write the plan and figures")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run once; 0 when every agent registered and no task was lost or duplicated."""
    args = build_parser().parse_args(argv)
    plan = Plan(**{k: getattr(args, k) for k in asdict(Plan())})
    if plan.kill_hosts >= plan.hosts:
        print("error: --kill-hosts must leave at least one host", file=sys.stderr)
        return 2

    def say(text: str) -> None:
        print(f"[thousand] {text}", file=sys.stderr, flush=True)

    with swarm_cluster(plan) as cluster:
        outcome = asyncio.run(measure(cluster, plan, say))
    print(table(outcome))
    if args.json:
        args.json.write_text(json.dumps(outcome.as_json(), indent=1, default=str) + "\n")
    for failure in outcome.figures.get("failures", []):
        print(f"  a failure: {failure}")
    outcomes = outcome.figures.get("outcomes", {}).values()
    ok = (
        len(outcome.registered) == plan.agents
        and not any(o["lost"] or o["duplicated"] or o["failed"] for o in outcomes)
        and outcome.figures.get("after_on_dead") == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
