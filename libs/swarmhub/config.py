"""Validated settings, one object per concept, read from SWARMHUB_* environment variables."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def default_nats_url() -> str:
    """SWARMHUB_NATS_URL, else the local default (read alone, so `--help` never fails)."""
    return os.environ.get("SWARMHUB_NATS_URL", DEFAULT_NATS_URL)


def servers(url: str) -> list[tuple[str, str]]:
    """Each server of `url` (one or a comma list) as (scheme with "://" or "", host:port)."""
    out = []
    for part in (p.strip() for p in url.split(",")):
        scheme, sep, rest = part.rpartition("://")
        out.append((scheme + sep, rest.rsplit("@", 1)[-1]))
    return out


def redact_url(url: str) -> str:
    """`url` (one or a comma list) without user names, passwords or tokens, fit for logs."""
    return ",".join(scheme + host for scheme, host in servers(url))


_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def scrub_credentials(text: str) -> str:
    """`text` with the user names, passwords and tokens of any URLs in it removed."""
    return _USERINFO.sub(r"\1", text)


ENV_PREFIX = "SWARMHUB_"


class _Env(BaseModel):
    """Settings from SWARMHUB_<FIELD> environment variables; keyword arguments win over them.

    (Plain pydantic rather than pydantic-settings: that package costs every process about 5 MB
    of memory for features SwarmHub does not use.)
    """

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    def __init__(self, **values: Any) -> None:
        env = {
            name: os.environ[key]
            for name in type(self).model_fields
            if (key := f"{ENV_PREFIX}{name.upper()}") in os.environ and name not in values
        }
        super().__init__(**env, **values)


class BusSettings(_Env):
    """How a process connects to NATS."""

    nats_url: str = DEFAULT_NATS_URL
    connect_timeout: float = Field(default=2.0, gt=0)
    reconnect_wait: float = Field(default=0.5, gt=0)
    ping_interval: float = Field(default=5.0, gt=0)
    max_outstanding_pings: int = Field(default=3, ge=1)
    pending_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_body_bytes: int | None = Field(
        default=None,
        ge=1024,
        description="Largest message body; None = the server's max_payload less header room.",
    )
    request_timeout: float = Field(default=5.0, gt=0)
    tls_ca: str | None = Field(
        default=None,
        description="CA file to trust for TLS; None = the data folder's tls/ca.pem if present, "
        "else the system's CAs.",
    )


class TLSSettings(_Env):
    """TLS of the nats-server that `swarmhub up` starts (the services then connect with TLS)."""

    tls: bool = Field(default=False, description="Require TLS on the client port.")
    tls_cert: str | None = Field(
        default=None, description="Server certificate; None = the data folder's dev certificate."
    )
    tls_key: str | None = Field(default=None, description="Key of tls_cert (with it).")
    tls_ca: str | None = Field(
        default=None, description="CA that clients trust; None = the data folder's dev CA."
    )


class TelemetrySettings(_Env):
    """Logs, traces and metrics of a process."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"
    otlp_endpoint: str | None = Field(default=None, description="e.g. http://127.0.0.1:4318")
    trace_heartbeats: bool = Field(
        default=False, description="Trace agent heartbeats too (one trace per beat: noisy)."
    )
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 turns /metrics off.")
    metrics_host: str = "127.0.0.1"


class RuntimeSettings(_Env):
    """Lifecycle of any service."""

    drain_timeout: float = Field(default=15.0, gt=0)
    endpoint_concurrency: int = Field(default=64, ge=1)
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop", description="uvloop (faster I/O) or the standard asyncio loop."
    )
    gc_settle: bool = Field(
        default=True,
        description="Once serving, freeze start-up objects, collect young garbage less often "
        "and everything once a minute (false = CPython's defaults).",
    )


class StorageSettings(_Env):
    """Size limits of the streams and buckets, applied when they are created or updated."""

    tasks_max_bytes: int = Field(
        default=1024**3, ge=1024 * 1024, description="Task stream; full = new submits refused."
    )
    dead_max_bytes: int = Field(
        default=256 * 1024**2, ge=1024 * 1024, description="Dead letters; full = oldest dropped."
    )
    results_max_bytes: int = Field(
        default=1024**3, ge=1024 * 1024, description="Results bucket; full = writes wait."
    )
    agents_max_bytes: int = Field(default=64 * 1024**2, ge=1024 * 1024)


class WorkerSettings(_Env):
    """An agent-worker."""

    agent_id: str | None = None
    concurrency: int = Field(default=16, ge=1, le=10_000)
    app: str | None = Field(
        default=None,
        description="MODULE[:ATTR] of a swarmhub.App whose capabilities this worker offers; "
        "None = the built-ins.",
    )
    app_dir: str = Field(default=".", description="Folder the app's module is imported from.")
    capabilities: str | None = Field(default=None, description="Comma list; None = all offered.")
    heartbeat_interval: float = Field(default=1.0, gt=0)
    memoize: bool = Field(
        default=True, description="Cache results of capabilities that opt in (memoize=True)."
    )
    cache_timeout: float = Field(default=0.25, gt=0)
    cache_breaker_wait: float = Field(default=2.0, gt=0)
    memo_ttl: float = Field(default=600.0, gt=0)


class RouterSettings(_Env):
    """A task-router."""

    router_concurrency: int = Field(default=256, ge=1)
    dispatch_batching: bool = Field(
        default=True, description="Send the attempts for one agent started together as one batch."
    )
    ack_wait: float = Field(default=30.0, gt=0)
    max_deliver: int = Field(default=20, ge=2)
    results_ttl: float = Field(default=24 * 3600.0, gt=0)
    no_agent_wait: float = Field(default=30.0, ge=0)
    not_before_horizon: float = Field(
        default=3600.0, gt=0, description="How far ahead a task's not_before may be, in seconds."
    )
    retry_backoff: float = Field(default=0.1, gt=0)
    retry_backoff_max: float = Field(default=5.0, gt=0)
    replicas: int = Field(default=1, ge=1, le=5)
    breaker_window: int = Field(default=20, ge=1)
    breaker_min_calls: int = Field(default=5, ge=1)
    breaker_failure_rate: float = Field(default=50.0, gt=0, le=100)
    breaker_wait: float = Field(default=5.0, gt=0)
    breaker_half_open_calls: int = Field(default=2, ge=1)
    capability_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of the slots of the agents offering a capability that its tasks may "
        "hold at once (at least one; 1 = all, the default), e.g. 0.9 so that one capability of "
        "long tasks leaves room for the others.",
    )
    tenant_share: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Share of a router's slots (router_concurrency) that the tasks of one tenant "
        "(submitting NATS user) may hold at once (at least one) while other tenants have tasks "
        "waiting too: past it that tenant's next tasks wait in the stream, handed back with a "
        "short delay, while other tenants' keep flowing. A tenant alone may use every slot.",
    )


class CoordinatorSettings(_Env):
    """The swarm-coordinator."""

    heartbeat_interval: float = Field(default=1.0, gt=0)
    expire_after: float = Field(default=3.5, gt=0)
    replicas: int = Field(default=1, ge=1, le=5)
    lease_ttl: float = Field(default=3.0, ge=1.0, description="Leader lease; standbys wait it out.")
    job_max_fan_out: int = Field(
        default=10_000,
        ge=1,
        le=100_000,
        description="Most sub-tasks one swarm job may have (map inputs or ensemble agents).",
    )
    job_max_input_bytes: int = Field(
        default=64 * 1024,
        ge=64,
        description="Largest input (map) or payload (ensemble) of a swarm job, msgpack-encoded.",
    )
    job_max_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Largest swarm job as stored (all its inputs); also bounded by the message "
        "limit.",
    )
    job_max_running: int = Field(
        default=1000, ge=1, description="Jobs one leader runs at once; more are refused busy."
    )
    job_publish_in_flight: int = Field(
        default=256, ge=1, description="Sub-task publishes awaiting JetStream's ack at once."
    )
    jobs_ttl: float = Field(
        default=24 * 3600.0, gt=0, description="How long finished job results are kept."
    )


class CacheSettings(_Env):
    """The cache service."""

    cache_max_entries: int = Field(default=10_000, ge=1)
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    cache_default_ttl: float = Field(default=300.0, gt=0)
