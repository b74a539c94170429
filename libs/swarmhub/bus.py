"""The NATS connection, message headers, trace propagation and typed request/publish helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel

from swarmhub import codec, subjects, tracing
from swarmhub.acks import (
    EXPECTED_LAST_SUBJECT_SEQUENCE,
    WRONG_LAST_SEQUENCE,
    AckTimeout,
    NoStream,
    Stored,
    StreamAcks,
    StreamRejected,
)
from swarmhub.config import BusSettings
from swarmhub.errors import ErrorCode, NoResponders, ServiceError
from swarmhub.limits import Limits, cut
from swarmhub.roles import dedupe_key_for, inbox_for, tenant_for
from swarmhub.schemas import ErrorInfo
from swarmhub.tls import client_context, find_ca, tls_first
from swarmhub.tracing import SpanKind

M = TypeVar("M", bound=BaseModel)

HDR_MSG_ID = "Nats-Msg-Id"
KV_OPERATION = "KV-Operation"
ROLLUP = "Nats-Rollup"
HDR_CONTENT_TYPE = "Content-Type"
HDR_ERROR = "Nats-Service-Error"
HDR_ERROR_CODE = "Nats-Service-Error-Code"
HDR_ERROR_KIND = "Swarmhub-Error"

Callback = Callable[[], Awaitable[None]]


async def connect(
    settings: BusSettings,
    name: str,
    *,
    on_event: Callable[[str, str], None] | None = None,
    reconnect: bool = True,
) -> NATS:
    """Connect with settings fit for long-lived services: reconnect forever, ping often."""

    def note(kind: str) -> Callback:
        async def cb() -> None:
            if on_event:
                on_event(kind, "")

        return cb

    async def on_error(exc: Exception) -> None:
        if on_event:
            on_event("error", f"{type(exc).__name__}: {exc}")

    # Trust the configured CA, else the local cluster's dev CA: used when the server requires TLS.
    # A tls:// URL starts TLS before anything else, so nothing is ever sent in plaintext.
    first = tls_first(settings.nats_url)
    tls = client_context(settings.tls_ca or find_ca(), required=first)
    return await nats.connect(
        servers=[s.strip() for s in settings.nats_url.split(",")],
        name=name,
        tls=tls,
        tls_handshake_first=first,
        # A user's inbox is its own: least-privilege permissions let it read no other.
        inbox_prefix=inbox_for(settings.nats_url),
        connect_timeout=settings.connect_timeout,  # type: ignore[arg-type]
        reconnect_time_wait=settings.reconnect_wait,  # type: ignore[arg-type]
        max_reconnect_attempts=-1 if reconnect else 0,
        allow_reconnect=reconnect,
        ping_interval=settings.ping_interval,  # type: ignore[arg-type]
        max_outstanding_pings=settings.max_outstanding_pings,
        pending_size=settings.pending_bytes,
        error_cb=on_error,
        disconnected_cb=note("disconnected"),
        reconnected_cb=note("reconnected"),
        closed_cb=note("closed"),
    )


def make_headers(msg_id: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Headers for an outgoing message: content type, message id and the current trace context."""
    headers = {HDR_CONTENT_TYPE: codec.CONTENT_TYPE}
    if msg_id:
        headers[HDR_MSG_ID] = msg_id
    if extra:
        headers.update(extra)
    tracing.inject(headers)
    return headers


def error_headers(err: ServiceError) -> dict[str, str]:
    """ADR-32 error headers for a ServiceError."""
    return {
        HDR_CONTENT_TYPE: codec.CONTENT_TYPE,
        HDR_ERROR: cut(err.message, 512).replace("\r", " ").replace("\n", " "),
        HDR_ERROR_CODE: str(err.status),
        HDR_ERROR_KIND: err.code.value,
    }


def error_body(err: ServiceError) -> bytes:
    """The msgpack error body sent beside the error headers."""
    return codec.encode(ErrorInfo(code=err.code, message=cut(err.message), retryable=err.retryable))


def raise_for_error(msg: Msg) -> None:
    """Raise the ServiceError an ADR-32 error reply carries, if it carries one."""
    headers = msg.headers or {}
    if HDR_ERROR_CODE not in headers:
        return
    try:
        info = codec.decode(msg.data, ErrorInfo)
    except ServiceError:
        raise ServiceError(
            headers.get(HDR_ERROR_KIND, ErrorCode.INTERNAL.value),
            headers.get(HDR_ERROR, "unknown error"),
        ) from None
    raise ServiceError(info.code, info.message, retryable=info.retryable)


def _refused(subject: str, exc: StreamRejected) -> ServiceError:
    """JetStream's refusal of a publish as a ServiceError (server-side trouble is retryable)."""
    return ServiceError(
        ErrorCode.UNAVAILABLE,
        f"JetStream refused a message on {subject}: {cut(exc.description, 200)}.",
        retryable=exc.code >= 500 or exc.code == 0,
    )


class Bus:
    """A connected NATS client with JetStream and typed, traced helpers that respect size limits."""

    def __init__(self, nc: NATS, settings: BusSettings) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=settings.request_timeout)
        self.settings = settings
        self.limits = Limits.for_server(nc.max_payload, settings.max_body_bytes)
        self.acks = StreamAcks(nc)
        self._buckets: dict[str, KeyValue] = {}
        self.tenant = tenant_for(settings.nats_url)
        """The tenant this connection acts as: its NATS user (see `roles.tenant_for`)."""
        self.dedupe_key = dedupe_key_for(settings.nats_url)
        """The key of this connection's submit ids (see `subjects.submit_id`)."""

    def encode(self, model: BaseModel) -> bytes:
        """Encode within this connection's body limit."""
        return codec.encode(model, max_bytes=self.limits.body)

    def decode(self, data: bytes, model: type[M]) -> M:
        """Decode and validate within this connection's body limit."""
        return codec.decode(data, model, max_bytes=self.limits.body)

    async def request(
        self,
        subject: str,
        body: BaseModel | bytes,
        reply_model: type[M],
        *,
        template: str | None = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        span_attributes: dict[str, Any] | None = None,
    ) -> M:
        """Send a request and decode the reply; errors come back as ServiceError."""
        data = body if isinstance(body, bytes) else self.encode(body)
        timeout = timeout or self.settings.request_timeout
        with tracing.send_span(
            template or subject, SpanKind.CLIENT, None, len(data), subject, span_attributes
        ) as span:
            sent = make_headers(extra=headers)
            self.limits.check_fits(f"Request on {template or subject}", data, sent)
            try:
                msg = await self.nc.request(subject, data, timeout=timeout, headers=sent)
            except NoRespondersError:
                raise NoResponders(
                    ErrorCode.UNAVAILABLE,
                    f"No service is listening on {subject}.",
                    retryable=True,
                ) from None
            except NatsTimeoutError:
                raise ServiceError(
                    ErrorCode.TIMEOUT,
                    f"No reply on {subject} within {timeout} s.",
                    retryable=True,
                ) from None
            try:
                raise_for_error(msg)
            except ServiceError as exc:
                tracing.record_error(span, exc.code.value, exc.message)
                raise
            return self.decode(msg.data, reply_model)

    async def publish(
        self, subject: str, body: BaseModel | bytes, *, template: str | None = None
    ) -> None:
        """Publish a core NATS message (fire and forget)."""
        data = body if isinstance(body, bytes) else self.encode(body)
        with tracing.send_span(template or subject, SpanKind.PRODUCER, None, len(data), subject):
            headers = make_headers()
            self.limits.check_fits(f"Message on {template or subject}", data, headers)
            await self.nc.publish(subject, data, headers=headers)

    async def respond(self, msg: Msg, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Answer a request, within the server's limit (an oversize answer raises TOO_LARGE)."""
        self.limits.check_fits("Reply", data, headers)
        await self.nc.publish(msg.reply, data, headers=headers)

    async def js_publish(
        self,
        subject: str,
        body: BaseModel | bytes,
        *,
        msg_id: str | None,
        template: str | None = None,
        timeout: float | None = None,
        span_attributes: dict[str, Any] | None = None,
    ) -> Stored:
        """Publish to a stream and wait for JetStream's acknowledgement."""
        data = body if isinstance(body, bytes) else self.encode(body)
        with tracing.send_span(
            template or subject, SpanKind.PRODUCER, msg_id, len(data), subject, span_attributes
        ):
            headers = make_headers(msg_id)
            self.limits.check_fits(f"Message on {template or subject}", data, headers)
            try:
                return await self._stream_publish(subject, data, headers, timeout)
            except StreamRejected as exc:
                raise _refused(subject, exc) from None

    async def kv_create(self, bucket: str, key: str, data: bytes) -> bool:
        """Write `key` in `bucket` only if it has no value (a deleted or purged key counts as
        none, as in nats-py's kv.create); False when it has one."""
        last = 0
        for _ in range(2):
            # The content type travels on with the value (the results bucket republishes it).
            headers = {
                HDR_CONTENT_TYPE: codec.CONTENT_TYPE,
                EXPECTED_LAST_SUBJECT_SEQUENCE: str(last),
            }
            self.limits.check_fits(f"Value of {bucket}", data, headers)
            try:
                await self._stream_publish(f"$KV.{bucket}.{key}", data, headers, None)
                return True
            except StreamRejected as exc:
                if exc.err_code not in WRONG_LAST_SEQUENCE:
                    raise _refused(f"$KV.{bucket}", exc) from None
            marker = await self._deleted_revision(bucket, key)
            if marker is None:
                return False
            last = marker
        return False

    def direct_bucket(self, name: str) -> KeyValue:
        """The KV bucket `name` read by direct gets only, without looking at its stream (which
        permissions may deny: a tenant may read its own keys of the results bucket, no more)."""
        kv = self._buckets.get(name)
        if kv is None:
            stream = subjects.kv_stream(name)
            kv = self._buckets[name] = KeyValue(
                name=name, stream=stream, pre=f"$KV.{name}.", js=self.js, direct=True
            )
        return kv

    async def bucket(self, name: str) -> KeyValue:
        """The KV bucket `name`, bound once per connection (nats-py's errors pass through)."""
        kv = self._buckets.get(name)
        if kv is None:
            kv = self._buckets[name] = await self.js.key_value(name)
        return kv

    async def _deleted_revision(self, bucket: str, key: str) -> int | None:
        """The revision of `key`'s delete or purge marker, or None when it holds a value."""
        kv = await self.bucket(bucket)
        try:
            await kv.get(key)
        except KeyNotFoundError as exc:  # nats-py reports a marker as not found, with its entry
            return exc.entry.revision if exc.entry is not None and exc.op is not None else None
        return None

    async def kv_purge(self, bucket: str, key: str) -> None:
        """Purge `key` of `bucket`: its values go, a purge marker stays (as nats-py's kv.purge)."""
        headers = {KV_OPERATION: "PURGE", ROLLUP: "sub"}
        try:
            await self._stream_publish(f"$KV.{bucket}.{key}", b"", headers, None)
        except StreamRejected as exc:
            raise _refused(f"$KV.{bucket}", exc) from None

    async def _stream_publish(
        self, subject: str, data: bytes, headers: dict[str, str], timeout: float | None
    ) -> Stored:
        """Publish to a stream; StreamRejected is left to the caller, the rest is ServiceError."""
        try:
            return await self.acks.publish(
                subject, data, headers, timeout or self.settings.request_timeout
            )
        except NoStream:
            raise ServiceError(
                ErrorCode.UNAVAILABLE,
                f"JetStream did not answer for {subject}: is the stream provisioned?",
                retryable=True,
            ) from None
        except AckTimeout:
            raise ServiceError(
                ErrorCode.TIMEOUT,
                f"JetStream did not acknowledge {subject} in time; it may not be stored.",
                retryable=True,
            ) from None

    async def close(self) -> None:
        """Drain and close the connection."""
        if self.nc.is_closed:
            return
        await self.acks.close()
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=3.0)
        except Exception:
            pass
        if not self.nc.is_closed:
            await self.nc.close()
