"""The `load` and `bench` subcommands: parsers and the functions that run them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarmhub.cli import json_object
from swarmhub.config import default_nats_url
from swarmhub.errors import ServiceError
from swarmhub.loadgen.constants import SCENARIO_NAMES

if TYPE_CHECKING:
    from swarmhub.client import SwarmClient
    from swarmhub.loadgen.config import LoadConfig
    from swarmhub.loadgen.resources import PidSource
    from swarmhub.loadgen.schedule import RateSearch

    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_ERROR = 1
EXIT_USAGE = 2
REPORT_STEM = "load-report"


def weights(text: str) -> dict[str, float]:
    """Parse `task=6,cache=3,agent=1`."""
    out: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, number = item.partition("=")
        try:
            out[name.strip()] = float(number) if sep else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid weight {item!r}; write e.g. task=6,cache=3,agent=1"
            ) from None
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=None,
        help="NATS URL (default: SWARMHUB_NATS_URL, else nats://127.0.0.1:4222)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    p.add_argument(
        "--cluster",
        action="store_true",
        help="start an embedded cluster on a free loopback port for this run (ignores --url)",
    )
    p.add_argument("--cluster-workers", type=int, default=2, help="agent-workers of --cluster")
    p.add_argument(
        "--pids",
        help="cluster PIDs to sample, e.g. 123,456 or router=123 "
        "(default: the --cluster's own, else services whose $SRV.INFO names a local PID)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def add_load_parser(subparsers: SubParsers) -> None:
    """Add the `load` subcommand."""
    p = subparsers.add_parser(
        "load",
        help="drive load at a cluster and judge it against thresholds",
        description="Open loop (--rate) or closed loop (--concurrency) load with HDR latency, "
        "resource sampling and thresholds. Exit code 3 when a threshold is breached.",
    )
    _common(p)
    p.add_argument("--scenario", choices=SCENARIO_NAMES, default="task")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="open loop: requests/s (default 100)")
    pace.add_argument("--concurrency", type=int, help="closed loop: requests in flight")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, help="measured seconds (default 10)")
    length.add_argument("--count", type=int, help="measured requests")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds excluded first (2)")
    traffic = p.add_argument_group("traffic")
    traffic.add_argument("--capability", default="echo", help="task/swarm capability (echo)")
    traffic.add_argument("--payload", type=json_object, default={}, help="base JSON payload")
    traffic.add_argument("--payload-bytes", type=int, default=0, help="padding per request")
    traffic.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    traffic.add_argument("--keys", type=int, default=1000, help="cache: key space size")
    traffic.add_argument("--zipf", type=float, default=1.1, help="cache: key skew (0 = uniform)")
    traffic.add_argument("--read-ratio", type=float, default=0.9, help="cache: share of gets")
    traffic.add_argument(
        "--fan-out", type=int, default=0, help="swarm: distinct agents per job (0 = all)"
    )
    traffic.add_argument(
        "--mix",
        type=weights,
        default={"task": 6.0, "cache": 3.0, "agent": 1.0},
        help="mixed: weights, e.g. task=6,cache=3,agent=1,swarm=1",
    )
    traffic.add_argument("--seed", type=int, help="random seed (keys, mix)")
    driver = p.add_argument_group("driver")
    driver.add_argument("--max-in-flight", type=int, default=10_000, help="open loop cap")
    driver.add_argument("--late-ms", type=float, default=5.0, help="start lag counted as late")
    driver.add_argument("--sample-interval", type=float, default=1.0, help="resource sampling s")
    driver.add_argument("--max-seconds", type=float, default=3600.0, help="hard cap of a run")
    limits = p.add_argument_group("thresholds (breach = ALERT line and exit code 3)")
    limits.add_argument("--min-throughput", type=float, default=400.0, help="req/s (400)")
    limits.add_argument("--max-p95-ms", type=float, default=200.0, help="ms (200)")
    limits.add_argument("--max-error-rate", type=float, default=1.0, help="percent (1.0)")
    limits.add_argument("--max-mem-growth-mb-h", type=float, default=5.0, help="MB/hour (5)")
    limits.add_argument("--max-load-avg", type=float, default=6.0, help="1-minute (6.0)")
    limits.add_argument(
        "--mem-min-window",
        type=float,
        default=60.0,
        help="seconds of post-warm-up samples before memory growth is judged (60)",
    )
    out = p.add_argument_group("reports")
    out.add_argument("--report", type=Path, metavar="DIR", help="write Markdown and PNG here")
    search = p.add_argument_group("--find-max (open loop steps; P95 target = --max-p95-ms)")
    search.add_argument("--find-max", action="store_true", help="search the highest rate")
    search.add_argument("--start-rate", type=float, default=100.0, help="first step (100)")
    search.add_argument("--step-factor", type=float, default=1.5, help="ramp factor (1.5)")
    search.add_argument("--max-steps", type=int, default=8, help="steps at most (8)")
    search.add_argument("--step-duration", type=float, default=5.0, help="s per step (5)")
    p.set_defaults(plugin_handler=run_load)


def add_bench_parser(subparsers: SubParsers) -> None:
    """Add the `bench` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="the fixed benchmark suite, next to the original AI Orchestrator Hub figures",
        description="Agent operations, task processing, memory, swarm coordination, then "
        "saturation throughput, all over the real broker.",
    )
    _common(p)
    p.add_argument("--agent-iterations", type=int, default=100, help="registrations (100)")
    p.add_argument("--task-iterations", type=int, default=50, help="tasks (50)")
    p.add_argument("--memory-tasks", type=int, default=1000, help="tasks measured (1000)")
    p.add_argument(
        "--memory-warmup-tasks", type=int, default=1000, help="tasks before the memory row (1000)"
    )
    p.add_argument("--swarm-rounds", type=int, default=20, help="swarm jobs (20)")
    p.add_argument("--saturation-seconds", type=float, default=5.0)
    p.add_argument("--saturation-concurrency", type=int, default=64)
    p.add_argument("--capability", default="echo", help="capability of tasks and swarm jobs")
    p.add_argument("--timeout", type=float, default=30.0, help="per-operation timeout (s)")
    raw = p.add_argument_group(
        "--baseline (the same task workload over a raw nats-py JetStream pipeline, then SwarmHub)"
    )
    raw.add_argument(
        "--baseline",
        action="store_true",
        help="compare with a raw nats-py pipeline on its own nats-server; starts its own "
        "cluster unless --url is given",
    )
    raw.add_argument("--baseline-seconds", type=float, default=5.0, help="measured s/step (5)")
    raw.add_argument("--baseline-warmup", type=float, default=1.0, help="warm-up s/step (1)")
    raw.add_argument("--baseline-rate", type=float, default=1000.0, help="open loop /s (1000)")
    raw.add_argument(
        "--baseline-concurrency", default="1,64,512", help="closed loops in flight (1,64,512)"
    )
    p.set_defaults(plugin_handler=run_bench)


def load_config(args: argparse.Namespace, url: str | None = None) -> LoadConfig:
    """The LoadConfig the parsed arguments describe (ValueError names what is wrong)."""
    import secrets

    from swarmhub.loadgen.config import LoadConfig
    from swarmhub.loadgen.scenarios import ScenarioConfig
    from swarmhub.loadgen.thresholds import Thresholds

    traffic = ScenarioConfig(
        capability=args.capability,
        payload=args.payload,
        payload_bytes=args.payload_bytes,
        timeout=args.timeout,
        keys=args.keys,
        zipf=args.zipf,
        read_ratio=args.read_ratio,
        fan_out=args.fan_out,
        mix=args.mix,
        seed=args.seed,
        run_id=secrets.token_hex(4),
    )
    limits = Thresholds(
        min_throughput=args.min_throughput,
        max_p95_ms=args.max_p95_ms,
        max_error_pct=args.max_error_rate,
        max_mem_growth_mb_h=args.max_mem_growth_mb_h,
        max_load_avg=args.max_load_avg,
        mem_min_window_s=args.mem_min_window,
    )
    rate = args.rate
    if args.find_max:
        if args.concurrency is not None:
            raise ValueError("--find-max steps the arrival rate; it cannot use --concurrency.")
        rate = args.start_rate
    elif rate is None and args.concurrency is None:
        rate = 100.0
    duration, count = args.duration, args.count
    if args.find_max:
        duration, count = args.step_duration, None
    elif duration is None and count is None:
        duration = 10.0
    return LoadConfig(
        url=url or args.url or default_nats_url(),
        scenario=args.scenario,
        rate=rate,
        concurrency=args.concurrency,
        duration=duration,
        count=count,
        warmup=args.warmup,
        max_in_flight=args.max_in_flight,
        late_ms=args.late_ms,
        sample_interval=args.sample_interval,
        max_seconds=args.max_seconds,
        progress=not args.quiet,
        traffic=traffic,
        thresholds=limits,
    )


def _given_pids(args: argparse.Namespace) -> PidSource | None:
    """A source of the PIDs --pids names (None when it names none)."""
    from swarmhub.loadgen.discovery import parse_pids

    if not args.pids:
        return None
    fixed = parse_pids(args.pids)
    return lambda: fixed


async def _resolve_pids(client: SwarmClient, url: str, given: PidSource | None) -> PidSource:
    """The given PID source, else the processes discovered serving `url`."""
    from swarmhub.loadgen.discovery import discover

    if given is not None:
        return given
    found = await discover(client, url)
    note = ", ".join(sorted(found)) or "none found (pass --pids to sample them)"
    print(f"sampling cluster processes: {note}", file=sys.stderr)
    return lambda: found


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_load(args: argparse.Namespace) -> int:
    """Run `swarmhub load`; returns the exit code (0, 1 error, 2 usage, 3 threshold breached)."""
    from swarmhub.loadgen.cluster import local_cluster
    from swarmhub.loadgen.schedule import RateSearch

    try:
        cfg = load_config(args)
        search = (
            RateSearch(args.start_rate, args.step_factor, args.max_steps) if args.find_max else None
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        given = _given_pids(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if search is None and cfg.rate is not None and cfg.rate < cfg.thresholds.min_throughput:
        _note(
            f"note: the offered {cfg.rate:g} req/s is below --min-throughput "
            f"{cfg.thresholds.min_throughput:g}, so the throughput threshold cannot hold"
        )
    with ExitStack() as stack:
        if args.cluster:
            cluster = stack.enter_context(local_cluster(args.cluster_workers))
            cfg = replace(cfg, url=cluster.url)
            given = given or cluster.pids
        try:
            result = asyncio.run(
                _load_main(cfg, search, given, args.cluster_workers if args.cluster else 0)
            )
        except ServiceError as exc:
            print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            return 130
    return _write_load_outputs(args, result, search is not None)


async def _load_main(
    cfg: LoadConfig, search: RateSearch | None, given: PidSource | None, wait_agents: int
) -> dict[str, Any]:
    from swarmhub.loadgen.cluster import wait_ready
    from swarmhub.loadgen.connection import connect
    from swarmhub.loadgen.findmax import find_max
    from swarmhub.loadgen.runner import execute

    async with await connect(cfg.url, "swarmhub-loadgen") as client:
        if wait_agents:
            await wait_ready(client, wait_agents)
        pids = await _resolve_pids(client, cfg.url, given)
        if search is not None:
            return await find_max(cfg, client, pids, search)
        return await execute(cfg, client, pids)


def _write_load_outputs(args: argparse.Namespace, result: dict[str, Any], searched: bool) -> int:
    from swarmhub.loadgen.findmax import find_max_table
    from swarmhub.loadgen.plot import write_plot, write_steps_plot
    from swarmhub.loadgen.report import summary_table, write_json, write_markdown

    print(find_max_table(result) if searched else summary_table(result))
    for line in result["alerts"]:
        print(line)
    if args.json:
        write_json(result, args.json)
        _note(f"wrote {args.json}")
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        if searched:
            steps_md = args.report / "find-max.md"
            steps_md.write_text(
                "# SwarmHub load --find-max\n\n```text\n" + find_max_table(result) + "\n```\n\n"
                "![P95 and throughput by offered rate](find-max.png)\n"
            )
            write_steps_plot(result["steps"], result["target_p95_ms"], args.report / "find-max.png")
            _note(f"wrote {steps_md} and find-max.png")
        best = result["best_step"] if searched else result
        if best is not None:
            write_plot(best, args.report / f"{REPORT_STEM}.png")
            write_markdown(best, args.report / f"{REPORT_STEM}.md", f"{REPORT_STEM}.png")
            _note(f"wrote {args.report / REPORT_STEM}.md and .png")
    return int(result["exit_code"])


def run_bench(args: argparse.Namespace) -> int:
    """Run `swarmhub bench`; returns 0 when every part ran, 1 otherwise."""
    from swarmhub.loadgen.baseline import (
        BaselineConfig,
        BaselineRun,
        concurrency_list,
        hub_task_bytes,
        run_raw_side,
    )
    from swarmhub.loadgen.bench import BenchConfig, run_suite
    from swarmhub.loadgen.cluster import local_cluster

    try:
        cfg = BenchConfig(
            url=args.url or default_nats_url(),
            agent_iterations=args.agent_iterations,
            task_iterations=args.task_iterations,
            memory_tasks=args.memory_tasks,
            memory_warmup_tasks=args.memory_warmup_tasks,
            swarm_rounds=args.swarm_rounds,
            saturation_seconds=args.saturation_seconds,
            saturation_concurrency=args.saturation_concurrency,
            capability=args.capability,
            timeout=args.timeout,
            progress=not args.quiet,
        )
        compare = (
            BaselineConfig(
                concurrencies=concurrency_list(args.baseline_concurrency),
                rate=args.baseline_rate,
                seconds=args.baseline_seconds,
                warmup=args.baseline_warmup,
                capability=args.capability,
                timeout=args.timeout,
            )
            if args.baseline
            else None
        )
        given = _given_pids(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    own_cluster = args.cluster or (compare is not None and args.url is None)
    try:
        baseline = None
        if compare is not None:
            # The raw side runs first, on its own nats-server, before any SwarmHub process of
            # ours exists, so the two never share the machine's cores.
            _note("[bench] baseline: raw nats-py JetStream pipeline ...")
            task_bytes = hub_task_bytes(compare)
            baseline = BaselineRun(
                compare, task_bytes, run_raw_side(compare, task_bytes, cfg.progress)
            )
        with ExitStack() as stack:
            wait_agents = 0
            if own_cluster:
                cluster = stack.enter_context(local_cluster(args.cluster_workers))
                cfg = replace(cfg, url=cluster.url)
                given = given or cluster.pids
                wait_agents = args.cluster_workers
            result = asyncio.run(run_suite(cfg, given, wait_agents, baseline))
    except ServiceError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    _write_bench_outputs(args, result)
    return int(result["exit_code"])


def _write_bench_outputs(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from swarmhub.loadgen.benchtable import bench_table
    from swarmhub.loadgen.comparison import comparison_table
    from swarmhub.loadgen.report import write_json

    print(bench_table(result))
    if "baseline" in result:
        print()
        print(comparison_table(result["baseline"]))
    if args.json:
        write_json(result, args.json)
        _note(f"wrote {args.json}")
