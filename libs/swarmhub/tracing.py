"""Spans of messaging hops, and the switch that makes them free when no exporter is set.

With tracing off (the default: no OTLP endpoint), `send_span` and `process_span` return one shared
no-op context manager: no span objects, no context extraction, no attribute dicts per message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

_NOOP = contextlib.nullcontext(trace.INVALID_SPAN)


class _Switch:
    """Whether this process records spans (set once, by `telemetry.configure_tracing`)."""

    on = False


switch = _Switch()
_tracer = trace.get_tracer("swarmhub")


def enable(on: bool = True) -> None:
    """Turn span recording on (an exporter is configured) or off."""
    switch.on = on


def attributes(
    template: str, operation: str, msg_id: str | None = None, size: int | None = None
) -> dict[str, Any]:
    """OpenTelemetry messaging attributes for one hop."""
    attrs: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": template,
        "messaging.operation.type": operation,
    }
    if msg_id:
        attrs["messaging.message.id"] = msg_id
    if size is not None:
        attrs["messaging.message.body.size"] = size
    return attrs


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context carried by incoming headers."""
    return propagate.extract(headers or {})


def inject(headers: dict[str, str]) -> None:
    """Add the current trace context to outgoing headers, if a span is current."""
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


def send_span(
    template: str, kind: SpanKind, msg_id: str | None, size: int
) -> contextlib.AbstractContextManager[Span]:
    """The span of one outgoing message, named after its subject template."""
    if not switch.on:
        return _NOOP
    return _tracer.start_as_current_span(
        f"send {template}", kind=kind, attributes=attributes(template, "send", msg_id, size)
    )


def process_span(
    template: str,
    headers: Mapping[str, str] | None,
    kind: SpanKind,
    msg_id: str | None,
    size: int,
) -> contextlib.AbstractContextManager[Span]:
    """The span of processing one incoming message, continued from its sender's trace."""
    if not switch.on:
        return _NOOP
    return _tracer.start_as_current_span(
        f"process {template}",
        context=extract_context(headers),
        kind=kind,
        attributes=attributes(template, "process", msg_id, size),
    )


def record_error(span: Span, code: str, message: str) -> None:
    """Mark a span as failed with an error code."""
    if span.is_recording():
        span.set_attribute("error.type", code)
        span.set_status(trace.Status(trace.StatusCode.ERROR, message))


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Turn recording on for a block (tests)."""
    before = switch.on
    switch.on = True
    try:
        yield
    finally:
        switch.on = before
