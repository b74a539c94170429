"""Logging (structlog, one event per line), tracing (OpenTelemetry) and the HTTP endpoint."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

from swarmhub import health, tracing
from swarmhub.config import TelemetrySettings

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Bind the current trace and span ids to every log line."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event["trace_id"] = format(ctx.trace_id, "032x")
        event["span_id"] = format(ctx.span_id, "016x")
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


def configure_tracing(service: str, instance_id: str, settings: TelemetrySettings) -> None:
    """Record and export spans over OTLP/HTTP when an endpoint is set; otherwise spans cost nothing.

    The SDK and the exporter are imported only when used, so a process that exports nothing
    carries neither in memory.
    """
    if not settings.otlp_endpoint:
        tracing.enable(False)
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise RuntimeError(
            "SWARMHUB_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
            f"pip install 'swarmhub[otlp]' ({exc})"
        ) from None

    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": instance_id})
    )
    endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    tracing.enable(True)


def shutdown_tracing() -> None:
    """Flush and stop span export."""
    provider: Any = trace.get_tracer_provider()
    if tracing.switch.on and hasattr(provider, "shutdown"):
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
