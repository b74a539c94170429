"""Trace context travels in headers, never in payloads."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from swarmhub.bus import HDR_CONTENT_TYPE, HDR_MSG_ID, extract_context, make_headers


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
