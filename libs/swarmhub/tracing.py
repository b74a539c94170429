"""Spans of messaging hops, and the switch that makes them free when no exporter is set.

With tracing off (the default: no OTLP endpoint), every span function here returns one shared
no-op context manager: no span objects, no context extraction, no attribute dicts per message.

Spans follow the OpenTelemetry messaging conventions: CLIENT → SERVER for request/reply,
PRODUCER → CONSUMER for publish and stream delivery; the name carries the subject template, the
attributes the real subject (`messaging.destination.name`) and the template
(`messaging.destination.template`), and task, capability, agent and attempt as `swarmhub.*`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

from swarmhub import subjects

_NOOP = contextlib.nullcontext(trace.INVALID_SPAN)

TASK_ID = "swarmhub.task.id"
CAPABILITY = "swarmhub.capability"
AGENT_ID = "swarmhub.agent.id"
ATTEMPT = "swarmhub.task.attempt"
STATUS = "swarmhub.task.status"
CACHE_HIT = "swarmhub.cache.hit"

HEARTBEAT_TEMPLATES = frozenset({subjects.TEMPLATES["heartbeat"], subjects.SWARM_HEARTBEAT_ALL})
"""Subjects not traced unless asked for (SWARMHUB_TRACE_HEARTBEATS): one trace per beat is noise."""


class _Switch:
    """Whether this process records spans (set once, by `telemetry.configure_tracing`)."""

    on = False
    quiet: frozenset[str] = HEARTBEAT_TEMPLATES


switch = _Switch()
_tracer = trace.get_tracer("swarmhub")


def enable(on: bool = True, *, heartbeats: bool = False) -> None:
    """Turn span recording on (an exporter is configured) or off; heartbeats stay quiet unless
    asked for."""
    switch.on = on
    switch.quiet = frozenset() if heartbeats else HEARTBEAT_TEMPLATES


def attributes(
    template: str,
    operation: str,
    msg_id: str | None = None,
    size: int | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """OpenTelemetry messaging attributes for one hop (`subject` is the real one, if known)."""
    attrs: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": subject or template,
        "messaging.operation.type": operation,
    }
    if subject and subject != template:
        attrs["messaging.destination.template"] = template
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
    template: str,
    kind: SpanKind,
    msg_id: str | None,
    size: int,
    subject: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """The span of one outgoing message, named after its subject template."""
    if not switch.on or template in switch.quiet:
        return _NOOP
    parent = trace.get_current_span()
    if not parent.is_recording() and parent.get_span_context().is_valid:
        # Part of an unsampled trace: no span; the parent's context travels on unchanged.
        return _NOOP
    return _started(f"send {template}", kind, None, template, "send", msg_id, size, subject, extra)


def process_span(
    template: str,
    headers: Mapping[str, str] | None,
    kind: SpanKind,
    msg_id: str | None,
    size: int,
    subject: str | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """The span of processing one incoming message, continued from its sender's trace."""
    if not switch.on or template in switch.quiet:
        return _NOOP
    context = extract_context(headers)
    parent = trace.get_current_span(context)
    sent = parent.get_span_context()
    if sent.is_valid and not sent.trace_flags.sampled:
        # The sender did not sample this trace: carry its context on, make no span.
        return trace.use_span(parent, end_on_exit=False)
    name = f"process {template}"
    return _started(name, kind, context, template, "process", msg_id, size, subject)


def _started(
    name: str,
    kind: SpanKind,
    context: otel_context.Context | None,
    template: str,
    operation: str,
    msg_id: str | None,
    size: int,
    subject: str | None,
    extra: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """Start a span made current; its attributes are built only if the sampler kept it (so the
    sampler sees none: a sampler deciding by attribute is not supported)."""
    span = _tracer.start_span(name, context=context, kind=kind)
    if span.is_recording():
        span.set_attributes(attributes(template, operation, msg_id, size, subject))
        if extra:
            span.set_attributes(extra)
    return trace.use_span(span, end_on_exit=True)


def child_span(
    operation: str, capability: str | None = None
) -> contextlib.AbstractContextManager[Span]:
    """An INTERNAL span `operation [capability]` under the current one (a capability run, a
    result write); none at the root, so unsampled work makes no stray traces of its own."""
    if not switch.on or not trace.get_current_span().is_recording():
        return _NOOP
    if capability is None:
        return _tracer.start_as_current_span(operation, kind=SpanKind.INTERNAL)
    return _tracer.start_as_current_span(
        f"{operation} {capability}", kind=SpanKind.INTERNAL, attributes={CAPABILITY: capability}
    )


def task_attributes(
    task_id: str,
    capability: str,
    attempt: int | None = None,
    agent_id: str | None = None,
) -> dict[str, Any]:
    """The `swarmhub.*` attributes naming a task (and its attempt and agent, when known)."""
    attrs: dict[str, Any] = {TASK_ID: task_id, CAPABILITY: capability}
    if attempt is not None:
        attrs[ATTEMPT] = attempt
    if agent_id is not None:
        attrs[AGENT_ID] = agent_id
    return attrs


def annotate(**attrs: Any) -> None:
    """Set attributes on the current span (call only under `if switch.on`: kwargs cost a dict)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({_ATTR_NAMES.get(k, k): v for k, v in attrs.items() if v is not None})


_ATTR_NAMES = {
    "task_id": TASK_ID,
    "capability": CAPABILITY,
    "agent_id": AGENT_ID,
    "attempt": ATTEMPT,
    "status": STATUS,
    "cache_hit": CACHE_HIT,
    "dead_letter_reason": "swarmhub.dead_letter.reason",
    "destination": "messaging.destination.name",
}


# The parent of work whose sender chose not to sample it: everything under it records nothing
# (a parent-based sampler follows it) instead of starting stray traces of its own.
_UNSAMPLED = trace.NonRecordingSpan(
    trace.SpanContext(
        trace_id=random.getrandbits(128) or 1,
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
    )
)


def unsampled() -> contextlib.AbstractContextManager[Span]:
    """Run a block as part of an unsampled trace (a batched attempt carries no trace context:
    the router batches only the attempts it does not sample)."""
    if not switch.on:
        return _NOOP
    return trace.use_span(_UNSAMPLED, end_on_exit=False)


def exemplar() -> dict[str, str] | None:
    """A Prometheus exemplar pointing at the current trace, when it is sampled (else None)."""
    if not switch.on:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.trace_flags.sampled:
        return None
    return {"trace_id": format(context.trace_id, "032x")}


def sampled() -> bool:
    """Whether the current span records (tracing on and this trace sampled)."""
    return switch.on and trace.get_current_span().is_recording()


def record_error(span: Span, code: str, message: str) -> None:
    """Mark a span as failed with an error code."""
    if span.is_recording():
        span.set_attribute("error.type", code)
        span.set_status(trace.Status(trace.StatusCode.ERROR, message))


def record_failure(span: Span, code: str, message: str) -> None:
    """Mark a span failed by an outcome that is not a Python exception (a task's final error):
    error status plus an `exception` event, as an exception would have left."""
    if span.is_recording():
        record_error(span, code, message)
        span.add_event("exception", {"exception.type": code, "exception.message": message})


def record_exception(span: Span, exc: BaseException) -> None:
    """Mark a span failed by an unexpected exception, traceback included (spans keep it; the
    caller's error message does not)."""
    if span.is_recording():
        name = type(exc).__name__
        span.set_attribute("error.type", name)
        span.record_exception(exc)  # with exception.stacktrace
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{name}: {exc}"))


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Turn recording on for a block (tests)."""
    before = switch.on
    switch.on = True
    try:
        yield
    finally:
        switch.on = before
