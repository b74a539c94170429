"""Every Prometheus metric SwarmHub exports, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60)

ENDPOINT_REQUESTS = Counter(
    "swarmhub_endpoint_requests", "Requests handled per endpoint.", ["service", "endpoint"]
)
ENDPOINT_ERRORS = Counter(
    "swarmhub_endpoint_errors", "Errors answered per endpoint.", ["service", "endpoint", "code"]
)
BREAKER_STATE = Gauge(
    "swarmhub_breaker_state", "Circuit state: 0 closed, 1 open, 2 half-open.", ["breaker"]
)

TASKS_COMPLETED = Counter(
    "swarmhub_tasks_completed", "Final task results recorded.", ["capability", "status"]
)
TASK_DURATION = Histogram(
    "swarmhub_task_duration_seconds",
    "Submit to final result.",
    ["capability"],
    buckets=LATENCY_BUCKETS,
)
DISPATCH_DURATION = Histogram(
    "swarmhub_dispatch_duration_seconds",
    "One dispatch round trip to an agent.",
    ["capability"],
    buckets=LATENCY_BUCKETS,
)
TASK_RETRIES = Counter("swarmhub_task_retries", "Attempts retried.", ["capability"])
DEAD_LETTERS = Counter("swarmhub_dead_letters", "Tasks dead-lettered.", ["capability", "reason"])
AGENTS_ALIVE = Gauge("swarmhub_agents_alive", "Live agents known to this process.")
ROUTER_IN_FLIGHT = Gauge("swarmhub_router_in_flight", "Tasks a router holds right now.")

WORKER_TASKS = Counter(
    "swarmhub_worker_tasks", "Attempts run by a worker.", ["capability", "status"]
)
WORKER_IN_FLIGHT = Gauge("swarmhub_worker_in_flight", "Attempts running in a worker.")
WORKER_CAPACITY = Gauge("swarmhub_worker_capacity", "Concurrency limit of a worker.")

CACHE_REQUESTS = Counter("swarmhub_cache_requests", "Cache operations.", ["op", "result"])
CACHE_ENTRIES = Gauge("swarmhub_cache_entries", "Entries held by a cache.")
CACHE_BYTES = Gauge("swarmhub_cache_bytes", "Bytes held by a cache.")
CACHE_EVICTIONS = Counter("swarmhub_cache_evictions", "Entries evicted to respect bounds.")
