"""Every message SwarmHub sends, as pydantic models: the single source of truth for the wire."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from swarmhub.errors import ErrorCode

TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
Token = str  # documented alias: a single subject token, validated by TOKEN_PATTERN


MAX_PAYLOAD_DEPTH = 64
"""Deepest nesting of maps and lists a task payload may have."""
EPOCH_MIN = 946_684_800.0  # 2000-01-01
EPOCH_MAX = 32_503_680_000.0  # 3000-01-01: anything later is a timestamp in the wrong unit


def _epoch_seconds(value: float) -> float:
    if not EPOCH_MIN <= value <= EPOCH_MAX:
        hint = " (it looks like milliseconds)" if value > EPOCH_MAX else ""
        raise ValueError(
            f"must be seconds since the Unix epoch, e.g. {int(time.time())}; got {value:g}{hint}"
        )
    return value


def _shallow(payload: dict[str, Any]) -> dict[str, Any]:
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"nests deeper than {MAX_PAYLOAD_DEPTH} levels of maps and lists")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return payload


EpochSeconds = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_epoch_seconds)]
"""A wall-clock time on the wire: finite seconds since the Unix epoch, between 2000 and 3000."""
AgentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]


def new_id() -> str:
    """A new random id fit for a subject token (32 lowercase hex digits)."""
    return uuid.uuid4().hex


def now() -> float:
    """Wall-clock time in seconds since the epoch, as every timestamp on the wire."""
    return time.time()


class Message(BaseModel):
    """Base of every wire message: unknown fields are rejected, so typos fail loudly."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Priority(StrEnum):
    """Priority lane of a task."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class ResultStatus(StrEnum):
    """Final status of a task; each task ends with exactly one of these."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    DEAD_LETTERED = "dead_lettered"


class ErrorInfo(Message):
    """An error as it travels on the wire: a stable code and a human sentence."""

    code: ErrorCode
    message: str = Field(max_length=4096)
    retryable: bool = False


class Task(Message):
    """A unit of work: run `capability` with `payload` on some live agent."""

    id: str = Field(default_factory=new_id, pattern=TOKEN_PATTERN)
    capability: str = Field(pattern=TOKEN_PATTERN)
    payload: Annotated[dict[str, Any], AfterValidator(_shallow)] = Field(default_factory=dict)
    priority: Priority = Priority.NORMAL
    deadline: EpochSeconds | None = Field(default=None, description="None = no deadline.")
    attempt_timeout: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    max_attempts: int = Field(default=3, ge=1, le=20)
    affinity: str | None = Field(default=None, max_length=256)
    created_at: EpochSeconds = Field(default_factory=now)
    # Retry state travels with the task, so routers stay stateless.
    attempt: int = Field(default=0, ge=0, le=20, description="Attempts already made.")
    last_error: ErrorInfo | None = None
    not_before: EpochSeconds | None = Field(default=None, description="Time of the next try.")
    tried_agents: list[AgentId] = Field(default_factory=list, max_length=32)


class Timings(Message):
    """Where a task's time went, in milliseconds."""

    queued_ms: float = 0.0
    run_ms: float = 0.0
    total_ms: float = 0.0


class TaskResult(Message):
    """The one final result of a task."""

    task_id: str
    status: ResultStatus
    capability: str = ""
    output: Any = None
    error: ErrorInfo | None = None
    agent_id: str | None = None
    attempts: int = 0
    timings: Timings = Field(default_factory=Timings)
    cached: bool = False
    finished_at: float = Field(default_factory=now)


class RunRequest(Message):
    """A router asks one agent to run one attempt of a task."""

    task: Task
    attempt: int = Field(ge=1)


class RunReply(Message):
    """An agent's successful answer to a RunRequest (failures travel as service errors)."""

    output: Any = None
    cached: bool = False
    run_ms: float = 0.0


MAX_BATCH = 256
"""Most attempts one dispatch batch carries."""


class RunBatch(Message):
    """A router asks one agent to run several attempts; answers come back as BatchReply messages."""

    items: list[RunRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItemReply(Message):
    """The answer to item `i` of a RunBatch: its RunReply, or the error it failed with."""

    i: int = Field(ge=0, lt=MAX_BATCH)
    ok: RunReply | None = None
    error: ErrorInfo | None = None


class BatchReply(Message):
    """Answers to some items of one RunBatch (an agent sends them as attempts finish)."""

    items: list[BatchItemReply] = Field(min_length=1, max_length=MAX_BATCH)


class AgentRegistration(Message):
    """An agent announces itself and what it can do."""

    agent_id: str = Field(pattern=TOKEN_PATTERN)
    capabilities: list[str] = Field(min_length=1)
    capacity: int = Field(ge=1, le=100_000)
    pid: int | None = None
    version: str = ""


class RegisterReply(Message):
    """The coordinator's answer to a registration: how often to heartbeat."""

    agent_id: str
    heartbeat_interval: float
    expire_after: float


class Heartbeat(Message):
    """An agent's periodic liveness and load report; enough to re-register an expired agent."""

    agent_id: str = Field(pattern=TOKEN_PATTERN)
    capabilities: list[str] = Field(min_length=1)
    capacity: int = Field(ge=1, le=100_000)
    pid: int | None = None
    in_flight: int = Field(ge=0)
    completed: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    draining: bool = False
    sent_at: float = Field(default_factory=now)


class LeaveRequest(Message):
    """An agent leaves on purpose: first to drain (final=False), then for good (final=True)."""

    agent_id: str = Field(pattern=TOKEN_PATTERN)
    final: bool = False


class Empty(Message):
    """A request that carries nothing."""


class Ack(Message):
    """A plain positive answer to a request that returns nothing else."""

    ok: bool = True


AgentState = Literal["up", "draining"]


class AgentRecord(Message):
    """One live agent in the registry (KV bucket `hub_agents`)."""

    agent_id: str
    capabilities: list[str]
    capacity: int
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    state: AgentState = "up"
    registered_at: float = Field(default_factory=now)
    last_seen: float = Field(default_factory=now)
    pid: int | None = None


class SwarmEvent(Message):
    """A membership change: agent_up, agent_down, leader."""

    kind: Literal["agent_up", "agent_down", "leader"]
    agent_id: str
    reason: str = ""
    at: float = Field(default_factory=now)


class StatusRequest(Message):
    """Ask for the state of one task by id."""

    task_id: str = Field(pattern=TOKEN_PATTERN)


class StatusReply(Message):
    """A task's state: done (with its result) or unknown (pending or never seen)."""

    task_id: str
    state: Literal["done", "unknown"]
    result: TaskResult | None = None


class CacheKey(Message):
    """Address of one cache entry."""

    namespace: str = Field(default="default", pattern=TOKEN_PATTERN)
    key: str = Field(min_length=1, max_length=1024)


class CacheSet(Message):
    """Store `value` under namespace/key for `ttl` seconds (None = the service default)."""

    namespace: str = Field(default="default", pattern=TOKEN_PATTERN)
    key: str = Field(min_length=1, max_length=1024)
    value: Any = None
    ttl: float | None = Field(default=None, gt=0)


class CacheGetReply(Message):
    """Answer to a cache get."""

    hit: bool
    value: Any = None


class CacheDelReply(Message):
    """Answer to a cache delete."""

    deleted: bool


class CacheInvalidation(Message):
    """Broadcast when an entry changes, so L1 near-caches drop it."""

    namespace: str
    key: str
    origin: str = ""


class CacheStats(Message):
    """Counters of a cache instance."""

    entries: int
    bytes: int
    hits: int
    misses: int
    sets: int
    deletes: int
    evictions: int
    expirations: int
    max_entries: int
    max_bytes: int


class SwarmJob(Message):
    """One job fanned out to many agents, results gathered and reduced."""

    id: str = Field(default_factory=new_id, pattern=TOKEN_PATTERN)
    capability: str = Field(pattern=TOKEN_PATTERN)
    payload: dict[str, Any] = Field(default_factory=dict)
    fan_out: int = Field(default=0, ge=0, le=10_000, description="0 = every live agent.")
    reduce: Literal["list", "count", "first"] = "list"
    timeout: float = Field(default=30.0, gt=0, le=3600)


class SwarmJobResult(Message):
    """The gathered outcome of a swarm job."""

    job_id: str
    status: Literal["succeeded", "partial", "failed"]
    results: list[Any] = Field(default_factory=list)
    errors: list[ErrorInfo] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    elapsed_ms: float = 0.0


class DeadLetter(Message):
    """A task the hub gave up on, kept with its original body for inspection and replay."""

    task_id: str | None
    capability: str
    subject: str
    error: ErrorInfo
    attempts: int = 0
    body: bytes = b""
    body_truncated: bool = False
    first_seen: float | None = None
    dead_at: float = Field(default_factory=now)
