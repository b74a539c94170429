"""One service runtime: connect, telemetry, typed endpoints with bounded concurrency, drain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import BaseModel

from swarmhub import __version__, heap, metrics, telemetry, tracing
from swarmhub.batching import BatchReplier
from swarmhub.bus import Bus, connect, error_body, error_headers
from swarmhub.config import BusSettings, RuntimeSettings, TelemetrySettings, redact_url
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import cut
from swarmhub.micro import DEFAULT_QUEUE_GROUP, EndpointStats, MicroResponder, ServiceIdentity
from swarmhub.tracing import SpanKind

Handler = Callable[[Any], Awaitable[BaseModel | None]]


@dataclass
class Endpoint:
    """A subscription whose messages are decoded into `model` and passed to `handler`."""

    name: str
    subject: str
    model: type[BaseModel]
    handler: Handler
    queue_group: str | None = DEFAULT_QUEUE_GROUP
    concurrency: int = 64
    template: str | None = None
    batch: bool = False
    subject_key: str | None = None  # a request field that must equal the subject's last token

    def __post_init__(self) -> None:
        self.stats = EndpointStats(self.name, self.subject, self.queue_group)
        self.requests_metric: Any = None  # labelled counter child, bound at start
        self.semaphore = asyncio.Semaphore(self.concurrency)
        self.subscription: Subscription | None = None


class Service:
    """Base of every SwarmHub service; subclasses add endpoints, loops and hooks."""

    name: ClassVar[str] = "service"
    description: ClassVar[str] = ""

    def __init__(
        self,
        bus_settings: BusSettings | None = None,
        telemetry_settings: TelemetrySettings | None = None,
        runtime_settings: RuntimeSettings | None = None,
    ) -> None:
        self.bus_settings = bus_settings or BusSettings()
        self.telemetry_settings = telemetry_settings or TelemetrySettings()
        self.runtime_settings = runtime_settings or RuntimeSettings()
        self.identity = ServiceIdentity(self.name, __version__, self.description)
        self.identity.metadata["pid"] = str(os.getpid())
        self.log = telemetry.get_logger()
        self.endpoints: list[Endpoint] = []
        self.stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        self.exit_code = 0
        self._bus: Bus | None = None
        self._micro: MicroResponder | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._draining_loops: list[asyncio.Task[None]] = []
        self.serving = False  # set once start() completed; readiness needs it

    # -- declaration -------------------------------------------------------------------------

    def add_endpoint(
        self,
        name: str,
        subject: str,
        model: type[BaseModel],
        handler: Handler,
        *,
        queue_group: str | None = DEFAULT_QUEUE_GROUP,
        concurrency: int | None = None,
        template: str | None = None,
        batch: bool = False,
        subject_key: str | None = None,
    ) -> Endpoint:
        """Declare an endpoint; it is subscribed when the service starts.

        With batch=True, `model` has an `items` list; `handler` runs once per item, concurrently,
        and answers stream back as they finish (see `swarmhub.batching`). With subject_key,
        a request whose field of that name differs from the subject's last token is refused (and
        one where it is None gets the token), so permissions on subjects decide who may speak for
        whom.
        """
        endpoint = Endpoint(
            name,
            subject,
            model,
            handler,
            queue_group,
            concurrency or self.runtime_settings.endpoint_concurrency,
            template,
            batch,
            subject_key,
        )
        self.endpoints.append(endpoint)
        return endpoint

    def track(self, coro: Coroutine[Any, Any, None], name: str | None = None) -> None:
        """Run one unit of in-flight work that shutdown must wait for."""
        task = asyncio.create_task(coro, name=name)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def spawn_loop(
        self, coro: Coroutine[Any, Any, None], name: str, *, drain: bool = False
    ) -> None:
        """Run a background loop; on shutdown it is cancelled once in-flight work is done.

        With drain=True the loop is instead awaited like in-flight work: it must watch
        `self.stopping` and return by itself (intake loops that finish their batch).
        """
        task = asyncio.create_task(self._guard_loop(coro, name), name=name)
        (self._draining_loops if drain else self._loops).append(task)

    async def _guard_loop(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("loop_crashed", loop=name)
            self.request_stop()

    # -- hooks ----------------------------------------------------------------------------

    async def setup(self) -> None:
        """Called once connected, before endpoints subscribe (declare dependencies here)."""

    async def begin_shutdown(self) -> None:
        """Called first on shutdown, while intake is still open (say goodbye here)."""

    async def teardown(self) -> None:
        """Called after in-flight work finished, before the connection drains."""

    def reconnected(self) -> None:
        """Called when the connection came back (subscriptions are restored; requests are not)."""

    def stats_data(self) -> dict[str, Any]:
        """Service-specific figures added to $SRV.STATS under `data`."""
        return {}

    # -- health -----------------------------------------------------------------------------

    def readiness(self) -> str | None:
        """Why this service cannot take work right now, or None when it can (/readyz).

        Read from another thread (the HTTP server's), so it only looks at plain attributes.
        Subscriptions and consumers are in place once start() is done (`serving`); a loop that
        crashes stops the service, and nats-py restores subscriptions before it reconnects.
        """
        if not self.serving or self._bus is None:
            if self.stopping.is_set():
                return "draining: the service is shutting down"
            return "starting: not yet connected and subscribed"
        nc = self._bus.nc
        if nc.is_closed:
            return "NATS connection closed"
        if self.stopping.is_set():
            return "draining: the service is shutting down"
        if not nc.is_connected:
            return "disconnected from NATS; reconnecting"
        return None

    def connected(self) -> bool:
        """Whether this process holds a live connection to NATS."""
        return self._bus is not None and self._bus.nc.is_connected

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def bus(self) -> Bus:
        """The connected bus; only valid once started."""
        if self._bus is None:
            raise RuntimeError(f"{self.name} is not connected yet.")
        return self._bus

    def request_stop(self) -> None:
        """Ask the service to shut down gracefully."""
        self.stopping.set()

    def _on_conn_event(self, kind: str, detail: str) -> None:
        if kind == "closed" and not self.stopping.is_set():
            # nats-py closes for good on some server errors; a process without NATS serves
            # nothing, so end it and let the supervisor (or Kubernetes) start a fresh one.
            self.log.error("nats_closed_unexpectedly", detail=cut(detail, 200) or None)
            self.exit_code = 1
            self.request_stop()
            return
        if kind == "reconnected":
            self.reconnected()
        # Closing at shutdown disconnects on purpose: not worth a warning.
        expected = kind in ("reconnected", "closed") or self.stopping.is_set()
        level = "info" if expected else "warning"
        getattr(self.log, level)("nats_" + kind, detail=cut(detail, 200) or None)

    async def start(self) -> None:
        """Connect, run setup, subscribe endpoints and answer discovery."""
        telemetry.configure_tracing(self.name, self.identity.instance_id, self.telemetry_settings)
        metrics.export(self.name)
        metrics.NATS_CONNECTED.set_function(lambda: float(self.connected()))
        nc = await self._connect_with_retry()
        self._bus = Bus(nc, self.bus_settings)
        self._replier = BatchReplier(self._bus)
        await self.setup()
        for endpoint in self.endpoints:
            endpoint.requests_metric = metrics.ENDPOINT_REQUESTS.labels(self.name, endpoint.name)
            endpoint.subscription = await nc.subscribe(
                endpoint.subject,
                queue=endpoint.queue_group or "",
                cb=self._make_batch_callback(endpoint)
                if endpoint.batch
                else self._make_callback(endpoint),
                pending_msgs_limit=1_000_000,
                pending_bytes_limit=self.bus_settings.pending_bytes,
            )
        self._micro = MicroResponder(nc, self.identity, self._endpoint_stats, self.stats_data)
        await self._micro.start()
        await nc.flush()
        if self.runtime_settings.gc_settle:
            heap.settle()
            self.spawn_loop(heap.collect_often(), "collect_garbage")
        self.serving = True
        self.log.info(
            "service_started",
            instance=self.identity.instance_id,
            url=redact_url(self.bus_settings.nats_url),
            endpoints=[e.subject for e in self.endpoints],
        )

    async def _connect_with_retry(self) -> NATS:
        """Connect, retrying while NATS is not up yet (a service may start before its server)."""
        delay = 0.2
        while True:
            try:
                return await connect(
                    self.bus_settings,
                    f"{self.name}-{self.identity.instance_id[:8]}",
                    on_event=self._on_conn_event,
                )
            except Exception as exc:
                if self.stopping.is_set():
                    raise
                self.log.warning(
                    "nats_connect_failed",
                    url=redact_url(self.bus_settings.nats_url),
                    reason=str(exc),
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    def _endpoint_stats(self) -> list[EndpointStats]:
        return [e.stats for e in self.endpoints]

    def _make_callback(self, endpoint: Endpoint) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            # Waiting here blocks this subscription's delivery: backpressure, not unbounded tasks.
            await endpoint.semaphore.acquire()
            task = asyncio.create_task(self._handle(endpoint, msg))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

        return on_message

    def _make_batch_callback(self, endpoint: Endpoint) -> Callable[[Msg], Awaitable[None]]:
        async def on_batch(msg: Msg) -> None:
            try:
                batch = self.bus.decode(msg.data, endpoint.model)
            except ServiceError as exc:
                endpoint.stats.record(0, self._refused(endpoint, exc))
                await self._respond_error(msg, exc)
                return
            # A batch holds only attempts the router did not sample: their one unsampled parent
            # is made current once, and every item's task inherits it (a task copies the
            # context it is created in).
            with tracing.unsampled():
                for index, item in enumerate(getattr(batch, "items")):  # noqa: B009
                    # Waiting here blocks this subscription's delivery: backpressure, as for one.
                    await endpoint.semaphore.acquire()
                    task = asyncio.create_task(self._handle_item(endpoint, msg.reply, index, item))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)

        return on_batch

    async def _handle_item(
        self, endpoint: Endpoint, reply_to: str, index: int, item: BaseModel
    ) -> None:
        started = time.perf_counter_ns()
        error: str | None = None
        try:
            reply = await endpoint.handler(item)  # under the batch's unsampled parent
            if reply_to and reply is not None:
                self._replier.ok(reply_to, index, reply)
        except ServiceError as exc:
            error = self._refused(endpoint, exc)
            if reply_to:
                self._replier.error(reply_to, index, exc)
        except Exception as exc:
            error = f"500:{type(exc).__name__}"
            self.log.exception("handler_failed", endpoint=endpoint.name)
            internal = _internal(endpoint)
            self._refused(endpoint, internal, log=False)
            if reply_to:
                self._replier.error(reply_to, index, internal)
        finally:
            endpoint.semaphore.release()
            endpoint.stats.record(time.perf_counter_ns() - started, error)
            endpoint.requests_metric.inc()

    async def _handle(self, endpoint: Endpoint, msg: Msg) -> None:
        started = time.perf_counter_ns()
        error: str | None = None
        try:
            with tracing.process_span(
                endpoint.template or endpoint.subject,
                msg.headers,
                SpanKind.SERVER if msg.reply else SpanKind.CONSUMER,
                None,
                len(msg.data),
                msg.subject,
            ) as span:
                try:
                    request = self.bus.decode(msg.data, endpoint.model)
                    if endpoint.subject_key is not None:
                        request = _check_subject_key(endpoint.subject_key, request, msg.subject)
                    reply = await endpoint.handler(request)
                    if msg.reply:
                        data = b"" if reply is None else self.bus.encode(reply)
                        await self.bus.respond(msg, data)
                except ServiceError as exc:
                    error = self._refused(endpoint, exc)
                    tracing.record_error(span, exc.code.value, exc.message)
                    await self._respond_error(msg, exc)
                except Exception as exc:
                    error = f"500:{type(exc).__name__}"
                    self.log.exception("handler_failed", endpoint=endpoint.name)
                    tracing.record_exception(span, exc)
                    internal = _internal(endpoint)
                    self._refused(endpoint, internal, log=False)
                    await self._respond_error(msg, internal)
        finally:
            endpoint.semaphore.release()
            endpoint.stats.record(time.perf_counter_ns() - started, error)
            endpoint.requests_metric.inc()

    def _refused(self, endpoint: Endpoint, exc: ServiceError, *, log: bool = True) -> str:
        """Count one refused request and log it (not a mere busy); its text for the stats."""
        metrics.ENDPOINT_ERRORS.labels(self.name, endpoint.name, exc.code.value).inc()
        if log and exc.code is not ErrorCode.BUSY:
            self.log.info(
                "request_rejected",
                endpoint=endpoint.name,
                code=exc.code.value,
                reason=cut(exc.message, 200),
            )
        return f"{exc.status}:{exc.message}"

    async def _respond_error(self, msg: Msg, exc: ServiceError) -> None:
        if not msg.reply:
            return
        with contextlib.suppress(Exception):
            await self.bus.respond(msg, error_body(exc), error_headers(exc))

    async def shutdown(self) -> None:
        """Graceful stop: goodbye → stop intake → finish in-flight → teardown → drain → close."""
        self.stopping.set()
        deadline = time.monotonic() + self.runtime_settings.drain_timeout
        self.log.info("service_stopping", in_flight=len(self._in_flight))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.begin_shutdown(), timeout=5)
        for endpoint in self.endpoints:
            if endpoint.subscription is not None:
                with contextlib.suppress(Exception):
                    await endpoint.subscription.unsubscribe()
        # In-flight work may spawn more in-flight work (a fetched batch), so wait until quiet.
        while pending := [*self._in_flight, *(t for t in self._draining_loops if not t.done())]:
            left = deadline - time.monotonic()
            if left <= 0:
                self.log.warning("shutdown_cancelled_work", tasks=len(pending))
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=2)
                break
            await asyncio.wait(pending, timeout=left)
        # Answers of the last batched attempts leave at the end of a turn: let them go out.
        if self._bus is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._replier.drain(), timeout=2)
        self.log.debug("shutdown_in_flight_done")
        for task in self._loops:
            task.cancel()
        if self._loops:
            await asyncio.wait(self._loops, timeout=2)
        self.log.debug("shutdown_loops_done")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.teardown(), timeout=5)
        self.log.debug("shutdown_teardown_done")
        if self._micro:
            await self._micro.stop()
        if self._bus:
            await self._bus.close()
        telemetry.shutdown_tracing()
        self.log.info("service_stopped")
        self.stopped.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT or request_stop(), then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self.stopping.wait()
        await self.shutdown()


def _check_subject_key(key: str, request: BaseModel, subject: str) -> BaseModel:
    """Refuse a request that names someone other than its subject does; fill in one that names
    no one (its field None) from the subject."""
    value = getattr(request, key)
    token = subject.rsplit(".", 1)[-1]
    if value is None:
        return request.model_copy(update={key: token})
    if value != token:
        raise ServiceError(
            ErrorCode.BAD_REQUEST,
            f"Field {key!r} is {cut(str(value), 128)!r} but the subject names {token[:128]!r}: "
            "a request may speak only for the id its subject carries.",
        )
    return request


def _internal(endpoint: Endpoint) -> ServiceError:
    """What a caller learns of an unexpected handler error: no details, only where to look."""
    return ServiceError(
        ErrorCode.INTERNAL, f"Internal error in {endpoint.name}; see the service log."
    )


def run_service(factory: Callable[[], Service]) -> None:
    """Entry point of `python -m <service>`: configure logging and metrics, then run."""
    settings = TelemetrySettings()
    service = factory()
    telemetry.configure_logging(service.name, settings)
    # The service was built before logging was configured: keep what it bound (an agent id).
    service.log = telemetry.rebind(service.log)
    telemetry.start_metrics_server(settings, service.readiness)
    run_loop(service.run(), service.runtime_settings.event_loop)
    sys.exit(service.exit_code)


def run_loop(main: Coroutine[Any, Any, None], kind: str = "uvloop") -> None:
    """Run `main` to completion on uvloop (fewer system calls per message) or plain asyncio."""
    if kind == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
