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
import enum
import os
import random
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from swarmhub import subjects

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

TASK_ID = "swarmhub.task.id"
CAPABILITY = "swarmhub.capability"
AGENT_ID = "swarmhub.agent.id"
ATTEMPT = "swarmhub.task.attempt"
STATUS = "swarmhub.task.status"
CACHE_HIT = "swarmhub.cache.hit"

HEARTBEAT_TEMPLATES = frozenset({subjects.TEMPLATES["heartbeat"], subjects.SWARM_HEARTBEAT_ALL})
"""Subjects not traced unless asked for (SWARMHUB_TRACE_HEARTBEATS): one trace per beat is noise."""


class SpanKind(enum.Enum):
    """OpenTelemetry's span kinds, same values, without importing OpenTelemetry: a process that
    does not trace never loads it (its `opentelemetry.trace.SpanKind` is accepted as well)."""

    INTERNAL = 0
    SERVER = 1
    CLIENT = 2
    PRODUCER = 3
    CONSUMER = 4


class _NoSpan:
    """The span of work that is not traced: records nothing, like OpenTelemetry's INVALID_SPAN."""

    __slots__ = ()

    def is_recording(self) -> bool:
        return False

    def get_span_context(self) -> Any:
        return _api().trace.INVALID_SPAN_CONTEXT

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        pass

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def end(self, end_time: int | None = None) -> None:
        pass


NO_SPAN = cast("Span", _NoSpan())
_NOOP = contextlib.nullcontext(NO_SPAN)


class _Switch:
    """Whether this process records spans (set once, by `telemetry.configure_tracing`)."""

    on = False
    quiet: frozenset[str] = HEARTBEAT_TEMPLATES


switch = _Switch()


class _Api:
    """The OpenTelemetry API, imported on first need: when tracing is turned on, or when the
    application loaded OpenTelemetry itself (then its current span still travels in headers)."""

    trace: Any = None
    context: Any = None
    propagate: Any = None
    baggage: Any = None
    tracer: Any = None
    textmap: Any = None  # the global propagator last checked by `_w3c`
    w3c = False  # whether it is the default W3C one (trace context, then baggage)
    unsampled = ""  # the traceparent of the parent of batched work, see `unsampled`
    quiet_span: Any = None  # the one span every unsampled hop makes current, see `_QuietSpan`
    quiet_context: Any = None  # an OpenTelemetry context holding only that span
    kinds: tuple[Any, ...] = ()  # OpenTelemetry's span kinds by value (faster than by call)
    roots: Any = None  # the provider's `_chosen_ids` generator, when new traces are decided here


_otel = _Api()


def _api() -> _Api:
    """The OpenTelemetry API, imported now if it was not yet."""
    if _otel.trace is None:
        from opentelemetry import baggage, propagate, trace
        from opentelemetry import context as otel_context

        _otel.context = otel_context
        _otel.propagate = propagate
        _otel.baggage = baggage
        _otel.tracer = trace.get_tracer("swarmhub")
        # The parent of work whose sender chose not to sample it: everything under it records
        # nothing (a parent-based sampler follows it) instead of starting stray traces.
        trace_id, span_id = random.getrandbits(128) or 1, random.getrandbits(64) or 1
        _otel.unsampled = _header(trace_id, span_id, 0)
        _otel.quiet_span = _quiet_span(trace)
        _otel.quiet_context = trace.set_span_in_context(_otel.quiet_span, otel_context.Context())
        _otel.kinds = tuple(sorted(trace.SpanKind, key=lambda kind: kind.value))
        _otel.trace = trace  # last: its being set means all of the above is
    return _otel


def _quiet_span(trace: Any) -> Span:
    """A `_QuietSpan`: an OpenTelemetry NonRecordingSpan (imported only now, hence built here)."""

    class _QuietSpan(trace.NonRecordingSpan):  # type: ignore[misc]
        """The one span every hop of an unsampled trace makes current, instead of a span object
        per message: its span context is the one of the hop current where it is asked for, read
        from that hop's traceparent only then (the fast paths below never ask)."""

        def get_span_context(self) -> Any:
            quiet = _quiet.get()
            return trace.INVALID_SPAN_CONTEXT if quiet is None else quiet.span_context()

    return cast("Span", _QuietSpan(trace.INVALID_SPAN_CONTEXT))


def _loaded() -> _Api | None:
    """The OpenTelemetry API if this process has imported it (by tracing, or on its own)."""
    if _otel.trace is not None:
        return _otel
    if "opentelemetry.trace" in sys.modules:
        return _api()
    return None


def _is_w3c(textmap: Any) -> bool:
    """Whether `textmap` is OpenTelemetry's default propagator: W3C trace context, then baggage
    (the only one whose headers the fast paths below read and write themselves)."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parts = getattr(textmap, "_propagators", None)
    return (
        type(textmap) is CompositePropagator
        and isinstance(parts, list)
        and [type(p) for p in parts] == [TraceContextTextMapPropagator, W3CBaggagePropagator]
    )


def _w3c(api: _Api) -> bool:
    """Whether the global propagator is the default W3C one (checked once per propagator)."""
    textmap = api.propagate.get_global_textmap()
    if textmap is not api.textmap:
        api.w3c = _is_w3c(textmap)
        api.textmap = textmap
    return api.w3c


def enable(on: bool = True, *, heartbeats: bool = False, roots: Any = None) -> None:
    """Turn span recording on (an exporter is configured) or off; heartbeats stay quiet unless
    asked for. OpenTelemetry is imported only when turned on. `roots` is the id generator of
    `ratio_sampling` when the global provider was built with it: new traces are decided here."""
    if on:
        _api()
    _otel.roots = roots if on else None
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


def _header(trace_id: int, span_id: int, flags: int) -> str:
    """The canonical version-00 W3C traceparent of a span context (as the propagator writes it)."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""A version-00 W3C traceparent in canonical form, the one shape the fast paths read."""


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The trace context carried by incoming headers."""
    return cast("Context", _api().propagate.extract(headers or {}))


def inject(headers: dict[str, str]) -> None:
    """Add the current trace context to outgoing headers, if a span is current (with the default
    W3C propagator and no baggage, written here directly: the same headers, a fraction of the
    cost, as every hop of every unsampled trace pays it)."""
    api = _otel if _otel.trace is not None else _loaded()
    if api is None:
        return  # OpenTelemetry was never imported: there is no current span
    quiet = _quiet_now(api)
    if quiet is not None and quiet.traceparent is not None:
        headers["traceparent"] = quiet.traceparent
        return
    context = api.trace.get_current_span().get_span_context()
    if not context.is_valid:
        return
    if _w3c(api) and not api.baggage.get_all():
        headers["traceparent"] = _header(context.trace_id, context.span_id, context.trace_flags)
        if context.trace_state:
            headers["tracestate"] = context.trace_state.to_header()
        return
    api.propagate.inject(headers)


class _Quiet:
    """What `_Current` made current for a trace that is not sampled: the OpenTelemetry context
    it attached and, with the default propagator, the traceparent header every message sent
    from it carries (so each hop asks one context variable, not OpenTelemetry, about it); for
    `_QuietSpan`, the span's own canonical traceparent (`header`)."""

    __slots__ = ("context", "header", "parsed", "remote", "traceparent")

    def __init__(
        self, context: Context, traceparent: str | None, header: str | None, remote: bool = True
    ) -> None:
        self.context = context
        self.traceparent = traceparent
        self.header = header
        self.remote = remote  # whether `header` came from the sender (else: a root made here)
        self.parsed: Any = None

    def span_context(self) -> Any:
        """The span context `header` stands for, parsed on first need; OpenTelemetry's invalid
        one without a header."""
        if self.parsed is None:
            trace = _otel.trace
            header = self.header
            if header is None:
                return trace.INVALID_SPAN_CONTEXT
            self.parsed = trace.SpanContext(
                trace_id=int(header[3:35], 16),
                span_id=int(header[36:52], 16),
                is_remote=self.remote,
                trace_flags=trace.TraceFlags(int(header[53:55], 16)),
            )
        return self.parsed


_quiet: ContextVar[_Quiet | None] = ContextVar("swarmhub_unsampled", default=None)


def _quiet_now(api: _Api) -> _Quiet | None:
    """The unsampled trace `_Current` made current, if it still is (nothing was made current
    under it since, e.g. by a handler's own OpenTelemetry code)."""
    quiet = _quiet.get()
    if quiet is not None and quiet.context is api.context.get_current():
        return quiet
    return None


class _Current:
    """Make a span that records nothing current for a block (what `trace.use_span` does for
    it, without a generator per message), noting it as unsampled for the fast paths. With no
    `span`, the shared `_QuietSpan` stands for the one whose canonical traceparent is `header`
    (then required), in a shared context when nothing else is current."""

    __slots__ = ("header", "quiet_token", "remote", "span", "token")

    def __init__(self, span: Span | None, header: str | None = None, remote: bool = True) -> None:
        self.span = span
        self.header = header  # the span's canonical traceparent, when already at hand
        self.remote = remote  # whether that traceparent came from the sender
        self.token: object = None
        self.quiet_token: Any = None

    def __enter__(self) -> Span:
        api = _otel
        span = self.span
        if span is None:
            span = api.quiet_span
            current = api.context.get_current()
            context = api.trace.set_span_in_context(span, current) if current else api.quiet_context
        else:
            context = api.trace.set_span_in_context(span)
        self.token = api.context.attach(context)
        header = _traceparent(api, context, span, self.header)
        self.quiet_token = _quiet.set(_Quiet(context, header, self.header, self.remote))
        return cast("Span", span)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _quiet.reset(self.quiet_token)
        _otel.context.detach(self.token)


def _traceparent(api: _Api, context: Context, span: Span, header: str | None) -> str | None:
    """The traceparent header `propagate.inject` writes under `context` (`span` current in
    it), when that is all it writes: the default propagator, no trace state, no baggage; else
    None. `header` is that header when the caller has it already (read from the sender)."""
    if len(context) > 1 and api.baggage.get_all(context):  # more than the span: maybe baggage
        return None
    if not _w3c(api):
        return None
    if header is not None:
        return header
    sent = span.get_span_context()
    if not sent.is_valid or sent.trace_state:
        return None
    return _header(sent.trace_id, sent.span_id, sent.trace_flags)


def _unsampled_sender(api: _Api, headers: Mapping[str, str]) -> _Current | None:
    """The sender's span made current, when its canonical W3C traceparent says it did not
    sample the trace (read directly: the full extraction costs more than the rest of the hop's
    tracing)."""
    header = headers.get("traceparent")
    if not header or "tracestate" in headers:
        return None
    match = _TRACEPARENT.fullmatch(header)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if int(flags, 16) & 1 or trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return _Current(None, header)  # sent on as it came: the propagator would write the same


RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
"""OTEL_TRACES_SAMPLER values whose decision on a new trace `_unsampled_root` makes itself."""

_LOW_64 = (1 << 64) - 1


def ratio_sampling() -> dict[str, Any]:
    """TracerProvider arguments that let new traces be decided here, as the SDK would: when
    OTEL_TRACES_SAMPLER names a ratio sampler with a valid OTEL_TRACES_SAMPLER_ARG, that sampler
    and an id generator that keeps a sampled root's trace id; else none (the SDK reads both)."""
    name = os.environ.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").lower()
    if name not in RATIO_SAMPLERS:
        return {}
    try:
        rate = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", ""))
    except ValueError:
        return {}  # the SDK warns and samples everything
    if not 0.0 <= rate <= 1.0:
        return {}
    from opentelemetry.sdk.trace import sampling

    # The very sampler the SDK would build from the environment, and its rule's bound.
    chosen = (
        sampling.TraceIdRatioBased if name == "traceidratio" else sampling.ParentBasedTraceIdRatio
    )
    bound = sampling.TraceIdRatioBased.get_bound_for_rate(rate)
    return {"sampler": chosen(rate), "id_generator": _chosen_ids(bound)}


def _chosen_ids(bound: int) -> Any:
    """The SDK's random id generator, except that the trace id `_unsampled_root` chose for a
    sampled root is the one the SDK's span gets (so its sampler decides the same)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class ChosenIds(RandomIdGenerator):  # type: ignore[misc]
        """Random ids; a root's trace id as chosen, when one is (per thread)."""

        def __init__(self) -> None:
            self.bound = bound  # the ratio sampler's: a trace id's low 64 bits below it sample
            self.chosen = threading.local()
            self.chosen.trace_id = 0
            self.flags = 2 if self.is_trace_id_random() else 0  # an unsampled root's

        def generate_trace_id(self) -> int:
            trace_id = getattr(self.chosen, "trace_id", 0)
            if trace_id:
                self.chosen.trace_id = 0
                return int(trace_id)
            return int(super().generate_trace_id())

    return ChosenIds()


def _unsampled_root() -> _Current | None:
    """A new trace decided by the ratio sampler's rule on a random trace id, without the SDK
    (which would spend more on a trace it drops than the hop's own work): unsampled, the block
    runs as that trace's root, recording nothing; sampled (or not decided here), None, and the
    SDK's span gets the id."""
    roots = _otel.roots
    if roots is None:
        return None
    trace_id = random.getrandbits(128)
    if trace_id & _LOW_64 < roots.bound or not trace_id:
        roots.chosen.trace_id = trace_id  # 0, the invalid id: the SDK draws and decides anew
        return None
    span_id = random.getrandbits(64) or 1
    return _Current(None, _header(trace_id, span_id, roots.flags), remote=False)


def send_span(
    template: str,
    kind: Any,
    msg_id: str | None,
    size: int,
    subject: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """The span of one outgoing message, named after its subject template (`kind` a SpanKind,
    this module's or OpenTelemetry's)."""
    if not switch.on or template in switch.quiet or _quiet_now(_otel) is not None:
        return _NOOP
    parent = _otel.trace.get_current_span()
    if not parent.is_recording():
        if parent.get_span_context().is_valid:
            # Part of an unsampled trace: no span; the parent's context travels on unchanged.
            return _NOOP
        if (root := _unsampled_root()) is not None:
            return root
    return _started(f"send {template}", kind, None, template, "send", msg_id, size, subject, extra)


def process_span(
    template: str,
    headers: Mapping[str, str] | None,
    kind: Any,
    msg_id: str | None,
    size: int,
    subject: str | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """The span of processing one incoming message, continued from its sender's trace."""
    if not switch.on or template in switch.quiet:
        return _NOOP
    api = _otel
    if headers and _w3c(api):
        sender = _unsampled_sender(api, headers)
        if sender is not None:
            # The sender did not sample this trace: carry its context on, make no span.
            return sender
    context = extract_context(headers)
    parent = api.trace.get_current_span(context)
    sent = parent.get_span_context()
    if sent.is_valid and not sent.trace_flags.sampled:
        return _Current(parent)
    if not sent.is_valid and (root := _unsampled_root()) is not None:
        return root
    name = f"process {template}"
    return _started(name, kind, context, template, "process", msg_id, size, subject)


def _started(
    name: str,
    kind: Any,
    context: Context | None,
    template: str,
    operation: str,
    msg_id: str | None,
    size: int,
    subject: str | None,
    extra: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span]:
    """Start a span made current; its attributes are built only if the sampler kept it (so the
    sampler sees none: a sampler deciding by attribute is not supported)."""
    trace = _otel.trace
    span = _otel.tracer.start_span(name, context=context, kind=_otel.kinds[kind.value])
    if _otel.roots is not None:
        _otel.roots.chosen.trace_id = 0  # taken by this root, or by none: never by the next
    if not span.is_recording():
        return _Current(span)
    span.set_attributes(attributes(template, operation, msg_id, size, subject))
    if extra:
        span.set_attributes(extra)
    return cast("contextlib.AbstractContextManager[Span]", trace.use_span(span, end_on_exit=True))


def child_span(
    operation: str, capability: str | None = None
) -> contextlib.AbstractContextManager[Span]:
    """An INTERNAL span `operation [capability]` under the current one (a capability run, a
    result write); none at the root, so unsampled work makes no stray traces of its own."""
    if not switch.on or _quiet_now(_otel) is not None:
        return _NOOP
    if not _otel.trace.get_current_span().is_recording():
        return _NOOP
    trace = _otel.trace
    if capability is None:
        return cast(
            "contextlib.AbstractContextManager[Span]",
            _otel.tracer.start_as_current_span(operation, kind=trace.SpanKind.INTERNAL),
        )
    return cast(
        "contextlib.AbstractContextManager[Span]",
        _otel.tracer.start_as_current_span(
            f"{operation} {capability}",
            kind=trace.SpanKind.INTERNAL,
            attributes={CAPABILITY: capability},
        ),
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


def current_span() -> Span:
    """The current span (one that records nothing while tracing is off)."""
    api = _loaded()
    return NO_SPAN if api is None else cast("Span", api.trace.get_current_span())


def sampled_ids() -> tuple[int, int] | None:
    """The trace and span id of the current span when its trace is sampled (for log lines)."""
    api = _otel if _otel.trace is not None else _loaded()
    if api is None or _quiet_now(api) is not None:
        return None
    context = api.trace.get_current_span().get_span_context()
    if context.is_valid and context.trace_flags.sampled:
        return context.trace_id, context.span_id
    return None


def annotate(**attrs: Any) -> None:
    """Set attributes on the current span (call only under `if sampled()`: kwargs cost a dict)."""
    if switch.on and _quiet_now(_otel) is not None:
        return
    span = current_span()
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


def unsampled() -> contextlib.AbstractContextManager[Span]:
    """Run a block as part of an unsampled trace (a batched attempt carries no trace context:
    the router batches only the attempts it does not sample)."""
    if not switch.on:
        return _NOOP
    return _Current(None, _otel.unsampled)


def exemplar() -> dict[str, str] | None:
    """A Prometheus exemplar pointing at the current trace, when it is sampled (else None)."""
    if not switch.on or _quiet_now(_otel) is not None:
        return None
    context = _otel.trace.get_current_span().get_span_context()
    if not context.trace_flags.sampled:
        return None
    return {"trace_id": format(context.trace_id, "032x")}


def sampled() -> bool:
    """Whether the current span records (tracing on and this trace sampled)."""
    if not switch.on or _quiet_now(_otel) is not None:
        return False
    return bool(_otel.trace.get_current_span().is_recording())


def record_error(span: Span, code: str, message: str) -> None:
    """Mark a span as failed with an error code."""
    if span.is_recording():
        trace = _api().trace
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
        trace = _api().trace
        name = type(exc).__name__
        span.set_attribute("error.type", name)
        span.record_exception(exc)  # with exception.stacktrace
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{name}: {exc}"))


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Turn recording on for a block (tests)."""
    before = switch.on
    _api()
    switch.on = True
    try:
        yield
    finally:
        switch.on = before
