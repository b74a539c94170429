"""Trace context travels in headers, never in payloads; spans cost nothing when tracing is off."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from swarmhub import tracing
from swarmhub.bus import HDR_CONTENT_TYPE, HDR_MSG_ID, make_headers
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
