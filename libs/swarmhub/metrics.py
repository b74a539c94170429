"""Every Prometheus metric SwarmHub exports, declared once, exported by the processes using it.

Metrics are declared unregistered: `export(service)` registers the shared ones plus the service's
own, so a router never shows a worker's gauges at 0. Label values that come from callers are
bounded: a capability is its name only once registered (`capabilities`), `other` beyond.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import MetricWrapperBase

from swarmhub import __version__

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
"""A swarm job takes milliseconds (a few echoes) to many minutes (a big map of slow tasks)."""

ENDPOINT_REQUESTS = Counter(
    "swarmhub_endpoint_requests",
    "Requests handled per endpoint.",
    ["service", "endpoint"],
    registry=None,
)
ENDPOINT_ERRORS = Counter(
    "swarmhub_endpoint_errors",
    "Errors answered per endpoint.",
    ["service", "endpoint", "code"],
    registry=None,
)
BREAKER_STATE = Gauge(
    "swarmhub_breaker_state",
    "Circuit state: 0 closed, 1 open, 2 half-open.",
    ["breaker"],
    registry=None,
)
BREAKER_TRANSITIONS = Counter(
    "swarmhub_breaker_transitions",
    "State changes of this process's circuit breakers, by the state left and the state entered.",
    ["from_state", "to_state"],
    registry=None,
)
# Per process, not per breaker: an agent's series would go when it leaves, often before a scrape
# saw its breaker open. Each pair starts at 0 on export, so that the first trip is an increase.

TASKS_COMPLETED = Counter(
    "swarmhub_tasks_completed",
    "Final task results recorded; fault: none, task (its input or its capability's code), hub.",
    ["capability", "status", "fault"],
    registry=None,
)
TASK_DURATION = Histogram(
    "swarmhub_task_duration_seconds",
    "Submit to final result.",
    ["capability"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
DISPATCH_DURATION = Histogram(
    "swarmhub_dispatch_duration_seconds",
    "One dispatch round trip to an agent.",
    ["capability"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
TASK_RETRIES = Counter("swarmhub_task_retries", "Attempts retried.", ["capability"], registry=None)
TASK_QUEUE_TIME = Histogram(
    "swarmhub_task_queue_seconds",
    "From a task's creation to the dispatch of its answered attempt, by priority lane.",
    ["lane"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
LANE_BACKLOG = Gauge(
    "swarmhub_lane_backlog",
    "Tasks waiting in each priority lane, as of its last delivery to this router.",
    ["lane"],
    registry=None,
)
DEAD_LETTERS = Counter(
    "swarmhub_dead_letters", "Tasks dead-lettered.", ["capability", "reason"], registry=None
)
AGENTS_ALIVE = Gauge(
    "swarmhub_agents_alive",
    "Agents taking work (up, not draining) known to this process.",
    registry=None,
)
ROUTER_IN_FLIGHT = Gauge(
    "swarmhub_router_in_flight", "Tasks a router holds right now.", registry=None
)
TENANT_HANDBACKS = Counter(
    "swarmhub_tenant_handbacks",
    "Deliveries handed back to the stream for a while because their tenant held its share of "
    "this router's slots while other tenants had tasks waiting (never counted as a failure).",
    registry=None,
)

JOBS_RUNNING = Gauge(
    "swarmhub_jobs_running",
    "Swarm jobs this coordinator runs right now (the leader's; 0 on a standby).",
    registry=None,
)
JOBS_FINISHED = Counter(
    "swarmhub_jobs_finished",
    "Swarm jobs whose one final result this coordinator recorded, by its status.",
    ["status"],
    registry=None,
)
JOB_DURATION = Histogram(
    "swarmhub_job_duration_seconds",
    "A swarm job's acceptance to its final result, by the result's status.",
    ["status"],
    buckets=JOB_BUCKETS,
    registry=None,
)

WORKER_TASKS = Counter(
    "swarmhub_worker_tasks",
    "Attempts run by a worker.",
    ["capability", "status"],
    registry=None,
)
WORKER_IN_FLIGHT = Gauge(
    "swarmhub_worker_in_flight", "Attempts running in a worker.", registry=None
)
WORKER_CAPACITY = Gauge("swarmhub_worker_capacity", "Concurrency limit of a worker.", registry=None)

CACHE_REQUESTS = Counter(
    "swarmhub_cache_requests", "Cache operations.", ["op", "result"], registry=None
)
CACHE_ENTRIES = Gauge("swarmhub_cache_entries", "Entries held by a cache.", registry=None)
CACHE_BYTES = Gauge("swarmhub_cache_bytes", "Bytes held by a cache.", registry=None)
CACHE_EVICTIONS = Counter(
    "swarmhub_cache_evictions", "Entries evicted to respect bounds.", registry=None
)

BUILD_INFO = Info(
    "swarmhub_build", "Version of SwarmHub, Python and the service of this process.", registry=None
)
NATS_CONNECTED = Gauge(
    "swarmhub_nats_connected", "1 while this process is connected to NATS, else 0.", registry=None
)
TASKS_PENDING = Gauge(
    "swarmhub_tasks_pending",
    "Tasks of the task stream as a router sees them: waiting (never delivered), held (by routers).",
    ["state"],
    registry=None,
)
TASKS_WAITING_FOR_AGENT = Gauge(
    "swarmhub_tasks_waiting_for_agent",
    "Tasks a router holds because no live agent offers their capability.",
    ["capability"],
    registry=None,
)
TASKS_OLDEST_AGE = Gauge(
    "swarmhub_tasks_oldest_age_seconds",
    "Age of the oldest task in the task stream (0 when empty), as a router sees it.",
    registry=None,
)

SHARED: tuple[MetricWrapperBase, ...] = (
    BUILD_INFO,
    NATS_CONNECTED,
    ENDPOINT_REQUESTS,
    ENDPOINT_ERRORS,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
)
BY_SERVICE: dict[str, tuple[MetricWrapperBase, ...]] = {
    "task-router": (
        TASKS_COMPLETED,
        TASK_DURATION,
        DISPATCH_DURATION,
        TASK_RETRIES,
        DEAD_LETTERS,
        AGENTS_ALIVE,
        ROUTER_IN_FLIGHT,
        TENANT_HANDBACKS,
        TASKS_PENDING,
        TASKS_OLDEST_AGE,
        TASKS_WAITING_FOR_AGENT,
        TASK_QUEUE_TIME,
        LANE_BACKLOG,
    ),
    "swarm-coordinator": (AGENTS_ALIVE, JOBS_RUNNING, JOBS_FINISHED, JOB_DURATION),
    "agent-worker": (WORKER_TASKS, WORKER_IN_FLIGHT, WORKER_CAPACITY),
    "cache": (CACHE_REQUESTS, CACHE_ENTRIES, CACHE_BYTES, CACHE_EVICTIONS),
}
"""Metrics each service sets, by service name; every service also exports SHARED."""

# Keyed by the registry itself, not its id: a registry freed and another made at its address
# would otherwise look as if it had every metric already.
_exported: WeakKeyDictionary[CollectorRegistry, set[int]] = WeakKeyDictionary()


def export(service: str, registry: CollectorRegistry = REGISTRY) -> None:
    """Export the shared metrics and those of `service` (each once per registry)."""
    exported = _exported.setdefault(registry, set())
    for metric in (*SHARED, *BY_SERVICE.get(service, ())):
        if id(metric) not in exported:
            registry.register(metric)
            exported.add(id(metric))
    _start_transitions()
    BUILD_INFO.info(
        {"version": __version__, "python": platform.python_version(), "service": service}
    )


def _start_transitions() -> None:
    """Every breaker transition's series, at 0."""
    # Imported here: breaker loads structlog, which must come after telemetry's set-up.
    from swarmhub.breaker import TRANSITIONS

    for left, entered in TRANSITIONS:
        BREAKER_TRANSITIONS.labels(left.label, entered.label)


OTHER = "other"
"""The label value of every capability not (yet) registered."""


class CapabilityLabels:
    """Capability names fit for a label: registered ones, up to `limit`; `other` beyond."""

    def __init__(self, limit: int = 500) -> None:
        self.limit = limit
        self.known: set[str] = set()

    def register(self, names: Iterable[str]) -> list[str]:
        """Admit `names` as label values (while room is left); returns the newly admitted."""
        added = []
        for name in names:
            if name not in self.known and len(self.known) < self.limit:
                self.known.add(name)
                added.append(name)
        return added

    def __call__(self, name: str) -> str:
        """`name` if registered, else `other`."""
        return name if name in self.known else OTHER


capabilities = CapabilityLabels()
"""This process's capability label values (a router admits what agents register)."""

_Metric = TypeVar("_Metric", bound=MetricWrapperBase)
_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: _Metric, *values: str) -> _Metric:
    """`metric.labels(*values)`, looked up once: a per-task path saves the lock and the dict
    that prometheus-client's own lookup takes (bounded, as label values are)."""
    key = (id(metric), values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found  # type: ignore[no-any-return]
