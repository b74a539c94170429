"""Logging (structlog, one event per line), tracing (OpenTelemetry) and the HTTP endpoint.

OpenTelemetry is imported only when tracing is configured (an OTLP endpoint is set): a process
that exports no spans carries none of it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

# structlog's console renderer imports `rich` (≈3 MB, some 60 modules) whenever it is installed
# (a development install has it); these processes render key=value or JSON lines and never use
# it, so structlog is imported with `rich` hidden, unless something already loaded either.
_HIDE_RICH = "rich" not in sys.modules and "structlog" not in sys.modules
if _HIDE_RICH:
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
try:
    import structlog
finally:
    if _HIDE_RICH:
        del sys.modules["rich"]

from swarmhub import health, tracing  # noqa: E402
from swarmhub.config import TelemetrySettings  # noqa: E402
from swarmhub.schemas import new_id  # noqa: E402

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Bind the current trace and span ids to every log line (of traces that are kept)."""
    ids = tracing.sampled_ids()
    if ids is not None:
        event["trace_id"] = format(ids[0], "032x")
        event["span_id"] = format(ids[1], "016x")
    return event


def configure_logging(service: str, settings: TelemetrySettings) -> None:
    """Route structlog to stderr, one line per event with stable keys."""
    renderer: Any
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.KeyValueRenderer(
            key_order=["ts", "level", "service", "event"], drop_missing=True
        )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", key="ts"),
            _add_trace_ids,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            _LEVELS.get(settings.log_level, logging.ERROR)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    route_library_logs(service)


LIBRARY_LOGGERS = ("opentelemetry", "urllib3")
"""Standard-library loggers of the span exporter; left alone they print plain text to stderr."""


class RateLimited:
    """Counts an event and lets it be reported at most once per `interval` seconds."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.count = 0
        self._last: float | None = None
        self._lock = threading.Lock()

    def hit(self) -> int | None:
        """Count one event; the number to report now (the count is then reset), or None."""
        with self._lock:
            self.count += 1
            now = self.clock()
            if self._last is not None and now - self._last < self.interval:
                return None
            self._last = now
            count, self.count = self.count, 0
            return count


class _LibraryLogs(logging.Handler):
    """Turns library log records into one structlog warning per `interval`, with a count."""

    def __init__(self, service: str, interval: float = 60.0) -> None:
        super().__init__(logging.WARNING)
        self.service = service
        self.limit = RateLimited(interval)

    def emit(self, record: logging.LogRecord) -> None:
        count = self.limit.hit()
        if count is None:
            return
        reason = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            reason = f"{reason} {type(exc).__name__}: {exc}"
        structlog.get_logger().warning(
            "telemetry_library_warning",
            service=self.service,  # emitted from the exporter's thread: no context vars there
            logger=record.name,
            reason=" ".join(reason.split())[:300],
            count=count,
            note="repeats are counted, one line per minute at most",
        )


def route_library_logs(service: str, interval: float = 60.0) -> None:
    """Send the exporter's standard-library logs through structlog, rate-limited, so a collector
    that is down cannot break one-event-per-line (JSON) logs with plain text or tracebacks."""
    handler = _LibraryLogs(service, interval)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _LibraryLogs)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False


def rebind(log: Any) -> Any:
    """A logger made under the current configuration that keeps the keys `log` had bound."""
    return get_logger(**structlog.get_context(log))


def configure_tracing(service: str, instance_id: str, settings: TelemetrySettings) -> None:
    """Record and export spans over OTLP/HTTP when an endpoint is set; otherwise spans cost nothing.

    The SDK and the exporter are imported only when used, so a process that exports nothing
    carries neither in memory.
    """
    if not settings.otlp_endpoint:
        tracing.enable(False)
        return
    # The sampler is the one OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG name (default
    # parentbased_always_on): the root decides, every hop after it follows.
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "SWARMHUB_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
            f"pip install 'swarmhub[otlp]' ({exc})"
        ) from None

    sampling = tracing.ratio_sampling()  # a ratio sampler's roots are decided without the SDK
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": instance_id}),
        **sampling,
    )
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    ours = trace.get_tracer_provider() is provider  # (a provider set earlier is kept instead)
    roots = sampling.get("id_generator") if ours else None
    tracing.enable(True, heartbeats=settings.trace_heartbeats, roots=roots)


class _ClientTracing:
    checked = False


def trace_client(service: str = "swarmhub-client") -> None:
    """In a client process (the CLI, a script), export spans once SWARMHUB_OTLP_ENDPOINT is set.

    Checked once per process; a provider the application installed itself is left in place.
    """
    if _ClientTracing.checked:
        return
    _ClientTracing.checked = True
    if tracing.switch.on:
        return
    settings = TelemetrySettings()
    if not settings.otlp_endpoint:
        return
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        tracing.enable(True)  # the application's own provider records our spans
        return
    configure_tracing(os.environ.get("OTEL_SERVICE_NAME", service), new_id(), settings)


def shutdown_tracing() -> None:
    """Flush and stop span export."""
    if not tracing.switch.on:
        return
    from opentelemetry import trace

    provider: Any = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


def start_metrics_server(
    settings: TelemetrySettings, readiness: health.Readiness = health.not_started
) -> int | None:
    """Serve /metrics, /healthz and /readyz when a port is configured; the port or None."""
    if settings.metrics_port == 0:
        return None
    health.serve(settings.metrics_host, settings.metrics_port, readiness)
    return settings.metrics_port


def get_logger(**bound: Any) -> Any:
    """A structlog logger with `bound` keys."""
    return structlog.get_logger().bind(**bound)
