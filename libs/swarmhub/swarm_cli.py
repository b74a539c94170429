"""`swarmhub swarm run|status|cancel`: swarm jobs from the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarmhub.schemas import JobProgress, SwarmJob, SwarmJobResult

REDUCES = ("gather", "first", "vote", "quorum", "capability")


def add_parser(
    sub: Any,
    with_url: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
    json_object: Callable[[str], dict[str, Any]],
) -> None:
    """Declare `swarmhub swarm ...` on the top-level subparsers."""
    swarm = sub.add_parser("swarm", help="run swarm jobs: a map over inputs, or an ensemble")
    verbs = swarm.add_subparsers(dest="swarm_command", required=True)
    run = with_url(
        verbs.add_parser(
            "run",
            help="run one capability over many inputs (map) or on N agents (ensemble)",
            description="Map: --inputs FILE.jsonl (one JSON object per line, one sub-task "
            "each). Ensemble: --payload JSON --ensemble N (N distinct agents; 0 = every live "
            "agent). Sub-tasks go through the durable task path; the job ends with exactly one "
            "result.",
        )
    )
    run.add_argument("capability")
    shape = run.add_mutually_exclusive_group(required=True)
    shape.add_argument("--inputs", type=Path, help="JSONL file: one input per line (map)")
    shape.add_argument("--payload", type=json_object, help="JSON object (ensemble)")
    run.add_argument("--ensemble", type=int, default=0, help="distinct agents (0 = all live)")
    run.add_argument("--reduce", choices=REDUCES, default="gather")
    run.add_argument("--quorum", type=int, help="how many equal outputs --reduce quorum needs")
    run.add_argument("--tie", choices=("fail", "lowest"), default="fail", help="vote tie rule")
    run.add_argument("--reduce-capability", help="capability that reduces the sub-results")
    run.add_argument("--deadline", type=float, help="seconds the job may take")
    run.add_argument("--max-attempts", type=int, default=3, help="per sub-task")
    run.add_argument("--id", dest="job_id", help="job id (default: random)")
    run.add_argument("--wait", action="store_true", help="wait for and print the result")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds to --wait")
    run.add_argument("--json", action="store_true", help="print JSON")
    status = with_url(verbs.add_parser("status", help="where a swarm job stands, or its result"))
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")
    cancel = with_url(verbs.add_parser("cancel", help="cancel a swarm job and its sub-tasks"))
    cancel.add_argument("job_id")
    cancel.add_argument("--json", action="store_true")


def read_inputs(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-empty line; a line that is not one is named."""
    inputs: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number} is not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{path}:{number} must be a JSON object")
        inputs.append(value)
    if not inputs:
        raise ValueError(f"{path} has no inputs")
    return inputs


def build_job(args: argparse.Namespace) -> SwarmJob:
    """The SwarmJob the arguments describe (ValueError naming what is wrong)."""
    fields: dict[str, Any] = {
        "capability": args.capability,
        "reduce": args.reduce,
        "quorum": args.quorum,
        "tie": args.tie,
        "reduce_capability": args.reduce_capability,
        "max_attempts": args.max_attempts,
    }
    if args.inputs is not None:
        if args.ensemble:
            raise ValueError("--ensemble goes with --payload, not --inputs")
        fields["inputs"] = read_inputs(args.inputs)
    else:
        fields["payload"] = args.payload
        fields["ensemble"] = args.ensemble
    if args.deadline is not None:
        fields["deadline"] = time.time() + args.deadline
    if args.job_id:
        fields["id"] = args.job_id
    return SwarmJob(**fields)


class ProgressLine:
    """One live stderr line: done/failed/running of N (rewritten in place on a terminal)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.tty = sys.stderr.isatty()
        self.last = ""

    def __call__(self, progress: JobProgress) -> None:
        text = (
            f"{self.job_id} {progress.state}: {progress.succeeded} done, {progress.failed} "
            f"failed, {progress.running} running of {progress.total}"
        )
        if text == self.last:
            return
        self.last = text
        if self.tty:
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the live line."""
        if self.tty and self.last:
            print(file=sys.stderr, flush=True)


def print_result(result: SwarmJobResult, as_json: bool) -> int:
    """Print a job's result; the exit code says whether it succeeded."""
    if as_json:
        print(json.dumps(result.model_dump(mode="json"), sort_keys=True))
    else:
        print(
            f"{result.job_id} {result.status} reduce={result.reduce} "
            f"succeeded={result.succeeded}/{result.total} elapsed_ms={result.elapsed_ms:.1f}"
        )
        if result.error is not None:
            print(f"error: {result.error.code.value}: {result.error.message}")
        print(json.dumps(result.value, sort_keys=True, default=str))
    return 0 if result.status == "succeeded" else 1


async def main(args: argparse.Namespace) -> int:
    """Run one `swarmhub swarm` verb."""
    from swarmhub.client import SwarmClient

    if args.swarm_command == "run":
        try:
            job = build_job(args)
        except (ValueError, OSError) as exc:
            print(f"error: invalid swarm job: {exc}", file=sys.stderr)
            return 2
        async with SwarmClient.connect(args.url, role="operator") as client:
            if not args.wait:
                accepted = await client.submit_job(job)
                out = {"job_id": accepted.job_id, "total": accepted.total}
                print(json.dumps(out) if args.json else accepted.job_id)
                return 0
            line = ProgressLine(job.id)
            try:
                result = await client.run_job(job, timeout=args.timeout, on_progress=line)
            finally:
                line.close()
            return print_result(result, args.json)
    async with SwarmClient.connect(args.url, role="operator") as client:
        if args.swarm_command == "cancel":
            reply = await client.cancel_job(args.job_id)
        else:
            reply = await client.job_status(args.job_id)
    if reply.result is not None and args.swarm_command == "status":
        return print_result(reply.result, args.json)
    p = reply.progress
    if args.json:
        print(json.dumps(reply.model_dump(mode="json"), sort_keys=True))
    elif p.state == "unknown":
        print(f"error: no swarm job {args.job_id} is known", file=sys.stderr)
    else:
        print(
            f"{p.job_id} {p.status or p.state}: {p.succeeded} done, {p.failed} failed, "
            f"{p.running} running of {p.total}"
        )
    if p.state == "unknown":
        return 3
    if args.swarm_command == "cancel":
        return 0 if p.status == "cancelled" else 1
    return 0
