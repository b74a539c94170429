"""Trace context travels in headers, never in payloads; spans cost nothing when tracing is off."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, cast

import pytest
import structlog
from nats.js.kv import KeyValue
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from swarmhub import telemetry, tracing
from swarmhub.bus import HDR_CONTENT_TYPE, HDR_MSG_ID, Bus, make_headers
from swarmhub.config import TelemetrySettings
from swarmhub.errors import ErrorCode
from swarmhub.schemas import ErrorInfo, ResultStatus, TaskResult
from swarmhub.telemetry import RateLimited
from swarmhub.tracing import extract_context


def test_headers_carry_trace_context_and_ids() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("send hub.task.submit.{capability}") as span:
        headers = make_headers("task-1")
        sent = span.get_span_context()
    assert headers[HDR_MSG_ID] == "task-1"
    assert headers[HDR_CONTENT_TYPE] == "application/msgpack"
    assert headers["traceparent"].split("-")[1] == format(sent.trace_id, "032x")
    received = trace.get_current_span(extract_context(headers)).get_span_context()
    assert received.trace_id == sent.trace_id
    assert received.span_id == sent.span_id


def test_no_trace_headers_without_a_span() -> None:
    assert "traceparent" not in make_headers()


def test_spans_are_one_shared_no_op_while_tracing_is_off() -> None:
    # Given tracing off (no exporter configured)
    tracing.enable(False)
    # When two hops open their spans
    first = tracing.send_span("hub.task.submit.{capability}", SpanKind.PRODUCER, "t1", 10)
    second = tracing.process_span("hub.agent.{agent_id}.run", {}, SpanKind.SERVER, None, 10)
    # Then no span object is made for either, and nothing records
    assert first is second
    with first as span:
        assert not span.is_recording()


def test_spans_record_while_tracing_is_on() -> None:
    trace.set_tracer_provider(TracerProvider())
    with tracing.recording():
        with tracing.send_span("hub.task.submit.{capability}", SpanKind.PRODUCER, "t1", 10) as s:
            assert s.is_recording()
            assert make_headers()["traceparent"]
    assert not tracing.switch.on


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, finished spans collected in memory (the SDK's default, parent-based sampler)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.recording():
        yield exporter
    exporter.shutdown()
    tracing.enable(False)


def test_destination_is_the_real_subject_and_the_template_an_attribute(
    spans: InMemorySpanExporter,
) -> None:
    # When a request goes to one agent's subject
    template = "hub.agent.{agent_id}.run"
    extra = tracing.task_attributes("t1", "echo", 2, "agent-a")
    with tracing.send_span(template, SpanKind.CLIENT, None, 10, "hub.agent.agent-a.run", extra):
        pass
    # Then the name holds the template, the attributes the subject, template and task
    (span,) = spans.get_finished_spans()
    assert span.name == "send hub.agent.{agent_id}.run"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    assert attrs["messaging.destination.name"] == "hub.agent.agent-a.run"
    assert attrs["messaging.destination.template"] == template
    assert attrs["messaging.system"] == "nats"
    assert attrs[tracing.TASK_ID] == "t1"
    assert attrs[tracing.CAPABILITY] == "echo"
    assert attrs[tracing.ATTEMPT] == 2
    assert attrs[tracing.AGENT_ID] == "agent-a"


def test_heartbeats_are_untraced_unless_asked_for(spans: InMemorySpanExporter) -> None:
    template = "hub.swarm.heartbeat.{agent_id}"
    # Given tracing on with default settings, when an agent beats and the coordinator hears it
    beat = tracing.send_span(template, SpanKind.PRODUCER, None, 10, "hub.swarm.heartbeat.a")
    heard = tracing.process_span("hub.swarm.heartbeat.*", {}, SpanKind.CONSUMER, None, 10)
    # Then neither makes a span
    assert beat is heard
    with beat as span:
        assert not span.is_recording()
    # But when heartbeats are asked for (SWARMHUB_TRACE_HEARTBEATS), they are traced
    tracing.enable(True, heartbeats=True)
    with tracing.send_span(template, SpanKind.PRODUCER, None, 10) as span:
        assert span.is_recording()


def test_child_spans_only_under_a_recording_span(spans: InMemorySpanExporter) -> None:
    # At the root, a capability run makes no span of its own
    with tracing.child_span("run", "echo") as span:
        assert not span.is_recording()
    # Under a processed request, it is a child that names its capability
    with tracing.process_span("hub.agent.{agent_id}.run", {}, SpanKind.SERVER, None, 1) as parent:
        tracing.annotate(task_id="t1", cache_hit=False, agent_id=None)
        with tracing.child_span("run", "echo") as child:
            assert child.is_recording()
    run, server = spans.get_finished_spans()
    assert run.name == "run echo" and run.kind is SpanKind.INTERNAL
    assert run.parent is not None and run.parent.span_id == parent.get_span_context().span_id
    assert dict(server.attributes or {})[tracing.TASK_ID] == "t1"
    assert dict(server.attributes or {})[tracing.CACHE_HIT] is False
    assert tracing.AGENT_ID not in dict(server.attributes or {})


def test_failures_are_error_status_with_the_exception_recorded(
    spans: InMemorySpanExporter,
) -> None:
    def capability_code() -> None:
        raise ValueError("bad input")

    # Given a task that ends failed and a handler that raised
    with tracing.send_span("a", SpanKind.CONSUMER, None, 1) as failed_task:
        tracing.record_failure(failed_task, "handler_error", "ValueError: bad input")
    with tracing.send_span("b", SpanKind.SERVER, None, 1) as crashed:
        try:
            capability_code()
        except ValueError as exc:
            tracing.record_exception(crashed, exc)
    first, second = spans.get_finished_spans()
    # Then both are ERROR with an exception event; the raised one keeps its traceback
    assert first.status.status_code is StatusCode.ERROR
    assert dict(first.attributes or {})["error.type"] == "handler_error"
    assert [e.name for e in first.events] == ["exception"]
    assert second.status.status_code is StatusCode.ERROR
    stack = str(dict(second.events[0].attributes or {})["exception.stacktrace"])
    assert "capability_code" in stack and "ValueError: bad input" in stack


def test_work_of_an_unsampled_trace_records_nothing(spans: InMemorySpanExporter) -> None:
    # A batched attempt: its router did not sample it, so nothing under it starts a trace
    with tracing.unsampled():
        assert not tracing.sampled()
        with tracing.send_span("hub.cache.get", SpanKind.CLIENT, None, 1) as span:
            assert not span.is_recording()
            assert make_headers()["traceparent"].endswith("-00")
    assert spans.get_finished_spans() == ()


def test_off_path_stays_shared_no_ops() -> None:
    tracing.enable(False)
    assert tracing.unsampled() is tracing.child_span("run", "echo")
    assert not tracing.sampled()


def test_rate_limited_counts_between_reports() -> None:
    now = [100.0]
    limit = RateLimited(10.0, clock=lambda: now[0])
    assert limit.hit() == 1  # the first is reported at once
    assert limit.hit() is None
    now[0] += 5
    assert limit.hit() is None
    now[0] += 5
    assert limit.hit() == 3  # then one report per interval, with what it left out


def test_exporter_logs_become_one_json_warning(capsys: pytest.CaptureFixture[str]) -> None:
    # Given JSON logs
    telemetry.configure_logging("probe", TelemetrySettings(log_format="json"))
    try:
        # When the exporter complains repeatedly, with a traceback
        exporter = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        for _ in range(5):
            try:
                raise ConnectionError("collector down")
            except ConnectionError:
                exporter.exception("Failed to export batch")
        # Then stderr holds one JSON line, no plain text
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1
        event = json.loads(lines[0])
        assert event["event"] == "telemetry_library_warning"
        assert event["service"] == "probe"
        assert "collector down" in event["reason"]
    finally:
        for name in telemetry.LIBRARY_LOGGERS:
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
        structlog.reset_defaults()


def test_rebind_keeps_what_was_bound_before_logging_was_configured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a logger bound (as the worker binds its agent id) before logging is configured
    early = telemetry.get_logger().bind(agent_id="agent-7")
    telemetry.configure_logging("agent-worker", TelemetrySettings(log_format="json"))
    try:
        # When the runtime replaces it after configuring logging
        telemetry.rebind(early).info("service_started")
        # Then the line keeps the binding
        event = json.loads(capsys.readouterr().err.splitlines()[-1])
        assert event["agent_id"] == "agent-7"
        assert event["service"] == "agent-worker"
    finally:
        for name in telemetry.LIBRARY_LOGGERS:
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
        structlog.reset_defaults()


def test_an_unsampled_sender_makes_no_spans_but_its_decision_travels_on(
    spans: InMemorySpanExporter,
) -> None:
    # Given a message whose sender did not sample its trace
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    incoming = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-00"}
    # When it is processed and a message is sent on
    with tracing.process_span("hub.task.submit.{capability}", incoming, SpanKind.CONSUMER, None, 1):
        with tracing.send_span("hub.task.result.{task_id}", SpanKind.PRODUCER, None, 1) as span:
            assert not span.is_recording()
            outgoing = make_headers()
    # Then no span was made, and the next hop hears the same unsampled trace
    assert spans.get_finished_spans() == ()
    assert outgoing["traceparent"].split("-")[1] == trace_id
    assert outgoing["traceparent"].endswith("-00")


def test_latency_exemplars_point_at_sampled_traces(spans: InMemorySpanExporter) -> None:
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.openmetrics.exposition import generate_latest

    registry = CollectorRegistry()
    latency = Histogram("latency_seconds", "x", registry=registry)
    with trace.get_tracer("test").start_as_current_span("task") as span:
        latency.observe(0.003, tracing.exemplar())
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert f'# {{trace_id="{trace_id}"}} 0.003' in generate_latest(registry).decode()


def test_no_exemplar_without_a_sampled_span() -> None:
    assert tracing.exemplar() is None


SERVICE_MODULES = (
    "swarmhub.task_router.service",
    "swarmhub.agent_worker.service",
    "swarmhub.cache_service.service",
    "swarmhub.swarm_coordinator.service",
)


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_a_service_that_does_not_trace_never_imports_opentelemetry(module: str) -> None:
    # Given a service process with no OTLP endpoint, set up as the runtime sets it up
    probe = f"""
import sys
import {module}
from swarmhub import bus, telemetry, tracing
from swarmhub.config import TelemetrySettings
telemetry.configure_logging("probe", TelemetrySettings(log_format="json"))
telemetry.configure_tracing("probe", "i-1", TelemetrySettings(otlp_endpoint=None))
# When it handles a message end to end: spans, headers, log lines, breaker events
kind = tracing.SpanKind.CONSUMER
with tracing.process_span("hub.task.submit.{{capability}}", {{}}, kind, None, 1):
    with tracing.send_span("hub.x", tracing.SpanKind.CLIENT, None, 1) as span:
        tracing.record_error(span, "x", "y")
        bus.make_headers("id")
    telemetry.get_logger().info("probe_event")
    tracing.current_span().add_event("x")
loaded = sorted(m for m in ("opentelemetry", "rich", "psutil", "matplotlib") if m in sys.modules)
print(",".join(loaded))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMHUB_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # Then neither OpenTelemetry nor anything else it does not use was loaded
    assert done.stdout.strip() == ""


@pytest.fixture
def keep_roots() -> Iterator[InMemorySpanExporter]:
    """Tracing on in a service whose sampler keeps every new trace but follows a parent's
    decision (parent-based), so any hop that lost its unsampled parent would record."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(True)
    before = tracing._otel.tracer
    tracing._otel.tracer = provider.get_tracer("swarmhub")
    try:
        yield exporter
    finally:
        tracing._otel.tracer = before
        tracing.enable(False)
        exporter.shutdown()


def test_an_unsampled_root_records_nothing_downstream(keep_roots: InMemorySpanExporter) -> None:
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # Given a client whose sampler drops the trace at its root (as 1 % drops 99 %)
    client = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))).get_tracer("client")
    with client.start_as_current_span("send hub.task.submit.{capability}") as root:
        assert not root.is_recording()
        sent = make_headers("t1")
    assert int(sent["traceparent"][-2:], 16) & 1 == 0  # the sampled flag is off
    # When a router processes it and works under it: annotates, child spans, sends on
    with tracing.process_span(
        "hub.task.submit.{capability}", sent, SpanKind.CONSUMER, "t1", 1
    ) as span:
        assert not span.is_recording()
        assert not tracing.sampled()
        assert tracing.exemplar() is None
        tracing.annotate(task_id="t1")
        with tracing.child_span("record result") as child:
            assert not child.is_recording()
            with tracing.send_span("hub.agent.{agent_id}.run", SpanKind.CLIENT, None, 1) as out:
                assert not out.is_recording()
                forwarded = make_headers()
    # And a worker processes the dispatch it sent
    with tracing.process_span("hub.agent.{agent_id}.run", forwarded, SpanKind.SERVER, None, 1):
        with tracing.child_span("run", "echo") as run:
            assert not run.is_recording()
        with tracing.send_span("hub.cache.get", SpanKind.CLIENT, None, 1) as out:
            assert not out.is_recording()
            last = make_headers()
    # Then not one span was recorded, and every hop carried the root's unsampled decision
    assert keep_roots.get_finished_spans() == ()
    assert forwarded["traceparent"] == sent["traceparent"] == last["traceparent"]
    # And nothing stays current after: a new trace here is a root, kept by this sampler
    assert "traceparent" not in make_headers()
    with tracing.send_span("hub.x", SpanKind.PRODUCER, None, 1) as fresh:
        assert fresh.is_recording()


def test_fast_headers_are_the_propagators_own(keep_roots: InMemorySpanExporter) -> None:
    from opentelemetry import baggage, context, propagate

    incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    with tracing.process_span("hub.x", incoming, SpanKind.CONSUMER, None, 1):
        fast = make_headers()
        slow: dict[str, str] = {}
        propagate.inject(slow)
        assert fast["traceparent"] == slow["traceparent"]
        # With baggage set by the application, the propagator writes the headers itself
        token = context.attach(baggage.set_baggage("tenant", "a"))
        try:
            assert make_headers()["baggage"] == "tenant=a"
        finally:
            context.detach(token)
    # As it does for baggage the application had set before the message came in
    token = context.attach(baggage.set_baggage("tenant", "b"))
    try:
        with tracing.process_span("hub.x", incoming, SpanKind.CONSUMER, None, 1):
            assert make_headers()["baggage"] == "tenant=b"
    finally:
        context.detach(token)
    # And a trace state travels on as the propagator carries it
    stated = {**incoming, "tracestate": "vendor=1"}
    with tracing.process_span("hub.x", stated, SpanKind.CONSUMER, None, 1):
        assert make_headers()["tracestate"] == "vendor=1"


def test_a_span_made_current_under_an_unsampled_one_is_the_one_sent(
    keep_roots: InMemorySpanExporter,
) -> None:
    # Given work of an unsampled trace (a batched attempt)
    with tracing.unsampled():
        assert not tracing.sampled()
        # When a handler makes its own span current (one its sampler keeps regardless)
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("handler")
        with tracer.start_as_current_span("own") as own:
            # Then the fast paths step aside: it is the current span, and its context is sent
            assert tracing.sampled()
            sent = make_headers()["traceparent"]
            assert sent.split("-")[2] == format(own.get_span_context().span_id, "016x")
            assert sent.endswith("-01")


def test_unsampled_hops_share_one_span_that_reads_as_each_senders(
    keep_roots: InMemorySpanExporter,
) -> None:
    # Given two messages of two unsampled traces
    first = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}
    second = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}
    # When the second is processed while the first is
    with tracing.process_span("hub.x", first, SpanKind.CONSUMER, None, 1) as outer:
        with tracing.process_span("hub.y", second, SpanKind.CONSUMER, None, 1) as inner:
            in_second = trace.get_current_span().get_span_context()
            # (a handler's own span follows the sender's decision, in the sender's trace)
            with tracing._otel.tracer.start_as_current_span("own") as own:
                assert not own.is_recording()
                assert own.get_span_context().trace_id == in_second.trace_id
        in_first = trace.get_current_span().get_span_context()
    # Then no span object was made per message: one stands for both
    assert outer is inner
    # And OpenTelemetry sees each sender's span context where it is current
    assert format(in_second.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(in_second.span_id, "016x") == "00f067aa0ba902b7"
    assert format(in_first.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(in_first.span_id, "016x") == "b7ad6b7169203331"
    assert in_first.is_remote and not in_first.trace_flags.sampled
    assert keep_roots.get_finished_spans() == ()
    assert not trace.get_current_span().get_span_context().is_valid


def test_batched_work_has_one_unsampled_parent(keep_roots: InMemorySpanExporter) -> None:
    # When two batched attempts run, each under the unsampled parent
    parents = []
    for _ in range(2):
        with tracing.unsampled():
            parents.append(trace.get_current_span().get_span_context())
            with tracing._otel.tracer.start_as_current_span("own") as own:
                assert not own.is_recording()
    # Then both have the same valid, unsampled parent, and nothing was recorded
    assert parents[0] == parents[1]
    assert parents[0].is_valid and not parents[0].trace_flags.sampled
    assert keep_roots.get_finished_spans() == ()


class _StoringBus:
    """The few Bus methods `ResultStore.record` uses, storing nothing."""

    def encode(self, result: TaskResult) -> bytes:
        return b"result"

    async def kv_create(self, bucket: str, key: str, data: bytes) -> bool:
        return True

    async def publish(self, subject: str, body: bytes, *, template: str | None = None) -> None:
        pass


@pytest.mark.parametrize("flags", ["00", "01"])
async def test_results_are_annotated_only_on_sampled_traces(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, flags: str
) -> None:
    from swarmhub.task_router.results import ResultStore

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(tracing, "annotate", lambda **attrs: calls.append(attrs))
    store = ResultStore(cast(Bus, _StoringBus()), cast(KeyValue, None))
    failed = TaskResult(
        task_id="t1",
        capability="echo",
        status=ResultStatus.FAILED,
        error=ErrorInfo(code=ErrorCode.INTERNAL, message="boom"),
    )
    # Given a task's delivery, of a sampled trace or not
    sender = {"traceparent": f"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"}
    # When its result is recorded
    with tracing.process_span("hub.task.submit.{capability}", sender, SpanKind.CONSUMER, None, 1):
        assert await store.record("client", failed)
    # Then only a sampled one was annotated (no attribute dict built for the others)
    if flags == "01":
        assert {"status": "failed", "agent_id": None} in calls
        assert {"task_id": "t1", "status": "failed"} in calls
        assert [s.name for s in spans.get_finished_spans()][-1].startswith("process")
    else:
        assert calls == []
        assert spans.get_finished_spans() == ()


@pytest.fixture
def ratio_roots(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[InMemorySpanExporter, Any]]:
    """Tracing on as `configure_tracing` sets it up for OTEL_TRACES_SAMPLER=
    parentbased_traceidratio at 0.5 (new traces decided without the SDK); the spans and sampler."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.5")
    sampling = tracing.ratio_sampling()
    provider = TracerProvider(**sampling)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable(True, roots=sampling["id_generator"])
    before = tracing._otel.tracer
    tracing._otel.tracer = provider.get_tracer("swarmhub")
    try:
        yield exporter, sampling["sampler"]
    finally:
        tracing._otel.tracer = before
        tracing.enable(False)
        exporter.shutdown()


def test_new_traces_decided_without_the_sdk_decide_as_its_sampler(
    ratio_roots: tuple[InMemorySpanExporter, Any],
) -> None:
    exporter, sampler = ratio_roots
    # When a client sends, and a service takes messages that carry no trace, 400 times
    sent: list[tuple[str, bool, bool]] = []
    for i in range(200):
        with tracing.send_span("hub.task.submit", SpanKind.PRODUCER, f"t{i}", 1) as span:
            here = trace.get_current_span().get_span_context()
            sent.append((make_headers()["traceparent"], span.is_recording(), here.is_remote))
        with tracing.process_span("hub.x", {}, SpanKind.CONSUMER, None, 1) as span:
            here = trace.get_current_span().get_span_context()
            sent.append((make_headers()["traceparent"], span.is_recording(), here.is_remote))
    recorded = {span.context.trace_id for span in exporter.get_finished_spans()}
    # Then each new trace is sampled exactly when the SDK's sampler samples its trace id
    for header, recording, remote in sent:
        trace_id = int(header[3:35], 16)
        by_sdk = sampler.should_sample(None, trace_id, "x").decision.is_sampled()
        assert (int(header[53:], 16) & 1 == 1) == by_sdk == recording == (trace_id in recorded)
        assert not remote  # a root made here, as the SDK's span is
    # And both ways were taken, each about half the time
    assert 120 < sum(recording for _, recording, _ in sent) < 280
    assert len({header for header, _, _ in sent}) == len(sent)


def test_an_unsampled_root_sends_what_the_sdks_own_would(
    ratio_roots: tuple[InMemorySpanExporter, Any],
) -> None:
    from opentelemetry import propagate
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # Given the SDK's own unsampled root and its headers
    sdk = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))).get_tracer("sdk")
    with sdk.start_as_current_span("root") as root:
        assert not root.is_recording()
        theirs: dict[str, str] = {}
        propagate.inject(theirs)
    # When roots are decided here, until one is not sampled
    while True:
        with tracing.send_span("hub.task.submit", SpanKind.PRODUCER, None, 1) as span:
            ours = make_headers()
            proper: dict[str, str] = {}
            propagate.inject(proper)
            if not span.is_recording():
                break
    # Then its headers have the same shape and flags, and are what the propagator writes
    assert ours["traceparent"] == proper["traceparent"]
    assert ours["traceparent"][53:] == theirs["traceparent"][53:]
    assert [len(part) for part in ours["traceparent"].split("-")] == [2, 32, 16, 2]


@pytest.mark.parametrize(
    ("name", "arg"),
    [("parentbased_always_on", "0.5"), ("traceidratio", "half"), ("traceidratio", "2")],
)
def test_other_samplers_and_bad_ratios_are_left_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch, name: str, arg: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    assert tracing.ratio_sampling() == {}


def test_a_ratio_sampler_named_in_the_environment_is_the_one_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio, TraceIdRatioBased

    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "TraceIdRatio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    sampler = tracing.ratio_sampling()["sampler"]
    assert type(sampler) is TraceIdRatioBased and sampler.rate == 0.25
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    sampler = tracing.ratio_sampling()["sampler"]
    assert type(sampler) is ParentBasedTraceIdRatio
    assert sampler.get_description().startswith("ParentBased{root:TraceIdRatioBased{0.25}")
