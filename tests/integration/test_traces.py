"""Real traces from a real local cluster, collected by an OTLP/HTTP receiver in the test.

Every service exports to a tiny HTTP server on 127.0.0.1 that decodes the protobuf
ExportTraceServiceRequest; the tests assert the span tree of a task as an operator would see it
in Jaeger: kinds (CLIENT↔SERVER, PRODUCER↔CONSUMER), parents, attributes and status.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmhub import subjects
from swarmhub.client import SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.loadgen.otlp_sink import Receiver, Span
from swarmhub.schemas import ResultStatus, Task
from tests.conftest import REPO, services_on, wait_for_agents, wait_until


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    try:
        yield rec
    finally:
        rec.stop()


@pytest.fixture(scope="module")
def cluster(
    nats_url: str, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    with services_on(
        nats_url,
        tmp_path_factory.mktemp("traced"),
        workers=2,
        worker_concurrency=4,
        app="tests.apps.traced",
        app_dir=REPO,
        extra_env={
            "SWARMHUB_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s, not the default 5 s
            "SWARMHUB_RETRY_BACKOFF": "0.01",
            "SWARMHUB_NO_AGENT_WAIT": "1",
            "SWARMHUB_LOG_FORMAT": "json",
        },
    ) as local:
        yield local


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(cluster.url, 2)
    async with await SwarmClient.connect(cluster.url) as c:
        yield c


async def wait_for_spans(receiver: Receiver, task_id: str, *names: str) -> list[Span]:
    """The task's trace once it holds a span of every name in `names` (repeats counted)."""

    async def complete() -> bool:
        got = [s.name for s in receiver.trace_of(task_id)]
        return all(got.count(n) >= names.count(n) for n in set(names))

    await wait_until(complete, 20, f"the spans of task {task_id}: {names}")
    return receiver.trace_of(task_id)


def only(spans: list[Span], name: str, **attrs: Any) -> Span:
    """The one span named `name` with these attributes."""
    found = [
        s for s in spans if s.name == name and all(s.attrs.get(k) == v for k, v in attrs.items())
    ]
    assert len(found) == 1, f"{len(found)} spans {name} {attrs} in {[s.name for s in spans]}"
    return found[0]


async def run_client(*args: tuple[str, ...], env: dict[str, str]) -> str:
    """Run a client process (`python` with `args`) to its end; its standard output."""
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        *(arg for part in args for arg in part),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(done.communicate(), 90)
    finally:
        if done.returncode is None:
            done.kill()  # by its own handle; only on a hung client
            await done.wait()
    assert done.returncode == 0, err.decode()[-2000:]
    return out.decode()


def child_of(child: Span, parent: Span) -> None:
    assert child.trace_id == parent.trace_id
    assert child.parent_id == parent.span_id, f"{child.name} is not a child of {parent.name}"


SUBMIT = "hub.task.submit.{tenant}.{capability}.{priority}"
RUN = "hub.agent.{agent_id}.run"
RESULT = "hub.task.result.{tenant}.{task_id}"


async def test_a_task_from_the_cli_is_one_trace_client_to_worker_and_back(
    cluster: LocalCluster, receiver: Receiver, client: SwarmClient
) -> None:
    # Given a cluster exporting traces, when the CLI submits a task and waits for it
    await run_client(
        ("-m", "swarmhub", "submit", "echo", "--id", "traced-ok", "--payload", '{"text": "hi"}'),
        ("--wait", "--url", cluster.url),
        env={**os.environ, "SWARMHUB_OTLP_ENDPOINT": receiver.url},
    )
    spans = await wait_for_spans(
        receiver,
        "traced-ok",
        f"send {SUBMIT}",
        f"process {SUBMIT}",
        f"send {RUN}",
        f"process {RUN}",
        "run echo",
        "record result",
        f"send {RESULT}",
    )
    # Then the CLI's PRODUCER span is the root, continued by the router's CONSUMER span
    send = only(spans, f"send {SUBMIT}")
    assert (send.service, send.kind, send.parent_id) == ("swarmhub-client", "PRODUCER", "")
    assert send.attrs["messaging.destination.name"] == subjects.task_submit(client.tenant, "echo")
    assert send.attrs["messaging.destination.template"] == SUBMIT
    assert send.attrs["messaging.message.id"] == subjects.result_key(client.tenant, "traced-ok")
    process = only(spans, f"process {SUBMIT}")
    assert (process.service, process.kind, process.status) == ("task-router", "CONSUMER", "UNSET")
    child_of(process, send)
    assert process.attrs["messaging.destination.name"] == subjects.task_submit(
        client.tenant, "echo"
    )
    assert process.attrs["swarmhub.capability"] == "echo"
    assert process.attrs["swarmhub.task.attempt"] == 1
    assert process.attrs["swarmhub.task.status"] == "succeeded"
    agent = process.attrs["swarmhub.agent.id"]
    # And the dispatch is CLIENT → SERVER on the agent's real subject
    request = only(spans, f"send {RUN}")
    assert request.kind == "CLIENT"
    child_of(request, process)
    assert request.attrs["messaging.destination.name"] == f"hub.agent.{agent}.run"
    assert request.attrs["messaging.destination.template"] == RUN
    assert request.attrs["swarmhub.agent.id"] == agent
    served = only(spans, f"process {RUN}")
    assert (served.service, served.kind, served.status) == ("agent-worker", "SERVER", "UNSET")
    child_of(served, request)
    assert served.attrs["swarmhub.task.id"] == "traced-ok"
    assert served.attrs["swarmhub.agent.id"] == agent
    # And the capability run and the result write are spans of their own
    run = only(spans, "run echo")
    assert run.kind == "INTERNAL"
    child_of(run, served)
    record = only(spans, "record result")
    child_of(record, process)
    event = only(spans, f"send {RESULT}")
    assert (event.kind, event.attrs["messaging.destination.name"]) == (
        "PRODUCER",
        subjects.task_result(client.tenant, "traced-ok"),
    )
    child_of(event, record)
    # And no span is named after an inbox, and no heartbeat was traced
    everything = receiver.snapshot()
    assert not [s.name for s in everything if "_INBOX" in s.name]
    assert not [s.name for s in everything if "heartbeat" in s.name]


async def test_a_retried_task_joins_both_attempts_in_one_trace(
    receiver: Receiver, client: SwarmClient, tmp_path: Path
) -> None:
    # Given a capability that fails its first attempt, when a task of it runs
    task = Task(capability="flaky", payload={"marker": str(tmp_path / "m")}, max_attempts=3)
    result = await client.run(task, timeout=30, check=False)
    assert result.status is ResultStatus.SUCCEEDED and result.attempts == 2
    spans = await wait_for_spans(
        receiver,
        task.id,
        f"process {SUBMIT}",
        f"process {SUBMIT}",
        f"send {RUN}",
        f"send {RUN}",
        "run flaky",
        "run flaky",
        f"send {SUBMIT}",
        "record result",
    )
    # Then the first attempt's request and run are errors, with the traceback on the run span
    first = only(spans, f"process {SUBMIT}", **{"swarmhub.task.attempt": 1})
    second = only(spans, f"process {SUBMIT}", **{"swarmhub.task.attempt": 2})
    failed_request = only(spans, f"send {RUN}", **{"swarmhub.task.attempt": 1})
    child_of(failed_request, first)
    assert failed_request.status == "ERROR"
    assert failed_request.attrs["error.type"] == "handler_error"
    failed_run = next(s for s in spans if s.name == "run flaky" and s.status == "ERROR")
    stack = failed_run.events[0][1]["exception.stacktrace"]
    assert "first attempt fails" in stack and "flaky" in stack
    # And the retry is a PRODUCER span of the first attempt that the second attempt continues
    retry = only(spans, f"send {SUBMIT}")
    child_of(retry, first)
    child_of(second, retry)
    assert second.attrs["swarmhub.task.status"] == "succeeded"
    assert second.status == "UNSET"
    child_of(only(spans, "record result"), second)


async def test_a_failed_task_is_an_error_with_its_traceback_kept_on_the_span_only(
    receiver: Receiver, client: SwarmClient
) -> None:
    # Given a capability that raises from the user's code, when a task of it runs once
    task = Task(capability="boom", payload={"value": 3}, max_attempts=1)
    result = await client.run(task, timeout=30, check=False)
    assert result.status is ResultStatus.FAILED and result.error is not None
    # Then the client learns what failed, without the traceback
    assert "ZeroDivisionError" in result.error.message
    assert "Traceback" not in result.error.message
    assert "_deep_in_user_code" not in result.error.message
    spans = await wait_for_spans(
        receiver, task.id, f"process {SUBMIT}", f"process {RUN}", "run boom", "record result"
    )
    # And every span on its path is an error; the router's records the task's final error
    process = only(spans, f"process {SUBMIT}")
    assert process.status == "ERROR"
    assert process.attrs["swarmhub.task.status"] == "failed"
    assert process.attrs["error.type"] == "handler_error"
    assert [name for name, _ in process.events] == ["exception"]
    assert only(spans, f"send {RUN}").status == "ERROR"
    assert only(spans, f"process {RUN}").status == "ERROR"
    run = only(spans, "run boom")
    assert run.status == "ERROR"
    (name, attrs) = run.events[0]
    assert name == "exception" and attrs["exception.type"] == "ZeroDivisionError"
    assert "_deep_in_user_code" in attrs["exception.stacktrace"]


async def test_a_dead_lettered_task_is_an_error(receiver: Receiver, client: SwarmClient) -> None:
    # Given no agent offers a capability, when a task of it waits out SWARMHUB_NO_AGENT_WAIT
    task = Task(capability="nosuch", payload={})
    result = await client.run(task, timeout=30, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED

    # Then the delivery that gave up is an error naming the reason, beside the dead letter
    def gave_up(spans: list[Span]) -> list[Span]:
        return [
            s
            for s in spans
            if s.kind == "CONSUMER" and s.attrs.get("swarmhub.task.status") == "dead_lettered"
        ]

    async def recorded() -> bool:
        return bool(gave_up(receiver.trace_of(task.id)))

    await wait_until(recorded, 20, "the span of the dead-lettered delivery")
    spans = receiver.trace_of(task.id)
    (last,) = gave_up(spans)
    assert last.status == "ERROR"
    assert last.attrs["error.type"] == "no_agent"
    assert last.attrs["swarmhub.dead_letter.reason"] == "no_agent"
    dead = [s for s in spans if s.name == "send hub.task.dead.{capability}"]
    assert dead and dead[0].attrs["messaging.destination.name"] == "hub.task.dead.nosuch"


async def test_a_cache_hit_is_marked_on_the_workers_span(
    receiver: Receiver, client: SwarmClient
) -> None:
    # Given a memoized capability, when the same payload runs until the cache answers
    payload = {"rounds": 10, "seed": "trace-hit"}
    hit: list[str] = []

    async def cached() -> bool:
        result = await client.run(Task(capability="cpu", payload=payload), timeout=20)
        if result.cached:
            hit.append(result.task_id)
        return bool(hit)

    await wait_until(cached, 20, "a memo cache hit")
    # Then the worker's span of that attempt says so, and no capability ran
    spans = await wait_for_spans(receiver, hit[0], f"process {RUN}")
    assert only(spans, f"process {RUN}").attrs["swarmhub.cache.hit"] is True
    assert not [s for s in spans if s.name == "run cpu"]


def test_worker_logs_keep_their_agent_id(cluster: LocalCluster) -> None:
    # The worker binds its agent id before logging is configured; its lines still carry it
    logs = sorted((cluster.config.data_dir / "logs").glob("agent-worker-*.log"))
    assert logs
    for log in logs:
        started = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if line.startswith("{") and '"service_started"' in line
        ]
        assert started and started[0]["agent_id"].startswith("agent-")


async def test_a_task_its_client_did_not_sample_leaves_no_span_anywhere(
    receiver: Receiver, client: SwarmClient
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # Given a client whose sampler drops a task's trace at its root (as 1 % drops 99 %), while
    # every service keeps new traces of its own (parent-based, always on)
    dropping = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))).get_tracer("app")
    cache_spans_before = {s.span_id for s in receiver.snapshot() if ".cache." in s.name}
    with dropping.start_as_current_span("submit") as root:
        assert not root.is_recording()
        dropped = format(root.get_span_context().trace_id, "032x")
        unsampled = await client.submit(Task(capability="echo", payload={"text": "dropped"}))
        # (and a memoized one: its agent asks the cache, and sets it, on a miss)
        memoized = await client.submit(
            Task(capability="cpu", payload={"rounds": 1, "seed": unsampled.id})
        )
    assert (await client.wait(unsampled.id, timeout=30)).status is ResultStatus.SUCCEEDED
    assert (await client.wait(memoized.id, timeout=30)).status is ResultStatus.SUCCEEDED
    # When a task after it is traced through every service (so the first one's spans, had any
    # been made, were exported before these)
    traced = await client.run(Task(capability="echo", payload={"text": "kept"}), timeout=30)
    await wait_for_spans(
        receiver, traced.task_id, f"process {SUBMIT}", f"process {RUN}", "record result"
    )
    # Then no hop of the unsampled task recorded a span: each followed the root's decision
    spans = receiver.snapshot()
    assert not [s.name for s in spans if s.trace_id == dropped]
    mentions = [
        s.name
        for s in spans
        for task_id in (unsampled.id, memoized.id)
        if any(task_id in str(v) for v in s.attrs.values())
    ]
    assert not mentions, f"spans of the unsampled tasks, each a trace of its own: {mentions}"
    # And the agent's cache round trips under the memoized one started no traces of their own
    cache_spans = [s.name for s in spans if ".cache." in s.name]
    assert not [s for s in spans if ".cache." in s.name and s.span_id not in cache_spans_before], (
        cache_spans
    )


RATIO_CLIENT = """
import asyncio, os
from swarmhub import telemetry
from swarmhub.client import SwarmClient

async def main() -> None:
    async with await SwarmClient.connect(os.environ["TEST_NATS_URL"]) as client:
        tasks = [await client.submit("echo", {"text": str(i)}) for i in range(24)]
        for task in tasks:
            await client.wait(task.id, timeout=30)
    telemetry.shutdown_tracing()  # export the sampled spans before leaving
    print(" ".join(task.id for task in tasks))

asyncio.run(main())
"""


async def test_a_client_sampling_half_its_tasks_gets_each_traced_whole_or_not_at_all(
    cluster: LocalCluster, receiver: Receiver, client: SwarmClient
) -> None:
    # Given a client sampling new traces at 0.5 (decided without the SDK for dropped ones)
    env = {
        **os.environ,
        "SWARMHUB_OTLP_ENDPOINT": receiver.url,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.5",
        "TEST_NATS_URL": cluster.url,
    }
    # When it submits 24 tasks and waits for them
    ids = (await run_client(("-c", RATIO_CLIENT), env=env)).split()
    assert len(ids) == 24
    # Then the tasks whose client span was kept are traced through every service
    roots = {
        s.attrs.get("swarmhub.task.id") for s in receiver.snapshot() if s.name == f"send {SUBMIT}"
    }
    kept = [task_id for task_id in ids if task_id in roots]
    assert 0 < len(kept) < 24, f"{len(kept)} of 24 sampled at 0.5"
    for task_id in kept:
        await wait_for_spans(
            receiver, task_id, f"process {SUBMIT}", f"process {RUN}", "record result"
        )
    # And the others left no span anywhere (every hop followed the client's decision)
    spans = receiver.snapshot()
    for task_id in set(ids) - set(kept):
        assert not [s.name for s in spans if any(task_id in str(v) for v in s.attrs.values())]
