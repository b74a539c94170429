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


EpochSeconds = Annotated[
    float,
    Field(
        allow_inf_nan=False,
        description=f"Seconds since the Unix epoch (not milliseconds), from {EPOCH_MIN:.0f} "
        f"(2000-01-01) to {EPOCH_MAX:.0f} (3000-01-01).",
    ),
    AfterValidator(_epoch_seconds),
]
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
    CANCELLED = "cancelled"


class ErrorInfo(Message):
    """An error as it travels on the wire: a stable code and a human sentence."""

    code: ErrorCode = Field(description="Stable, machine-readable error code.")
    message: str = Field(max_length=4096, description="One sentence naming the problem.")
    retryable: bool = Field(
        default=False, description="Whether trying again, later or elsewhere, may succeed."
    )


class Task(Message):
    """A unit of work: run `capability` with `payload` on some live agent."""

    id: str = Field(
        default_factory=new_id,
        pattern=TOKEN_PATTERN,
        description="Task id; the router refuses a task without one. Also the Nats-Msg-Id "
        "header of the submit, the result's key in KV bucket hub_results and the last token "
        "of its result event subject.",
    )
    capability: str = Field(
        pattern=TOKEN_PATTERN,
        description="Capability to run; must equal the last token of the submit subject.",
    )
    payload: Annotated[dict[str, Any], AfterValidator(_shallow)] = Field(
        default_factory=dict,
        description=f"Input of the capability: a map, at most {MAX_PAYLOAD_DEPTH} levels of "
        "maps and lists deep.",
    )
    priority: Priority = Field(default=Priority.NORMAL, description="Priority lane.")
    deadline: EpochSeconds | None = Field(
        default=None,
        description="When the task must be done, in epoch seconds; null = no deadline. "
        "Past it the task ends timed_out with error deadline_exceeded.",
    )
    attempt_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds one attempt may run on an agent.",
    )
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Most attempts before the task fails."
    )
    affinity: str | None = Field(
        default=None,
        max_length=256,
        description="Affinity key: tasks with the same key go to the same live agent.",
    )
    progress: bool = Field(
        default=False,
        description="Publish TaskProgress events on hub.task.progress.<id> as the task moves.",
    )
    created_at: EpochSeconds = Field(default_factory=now)
    # Retry state travels with the task, so routers stay stateless.
    attempt: int = Field(
        default=0, ge=0, le=20, description="Attempts already made (clients send 0)."
    )
    last_error: ErrorInfo | None = Field(
        default=None, description="Error of the previous attempt (set by the router)."
    )
    not_before: EpochSeconds | None = Field(
        default=None,
        description="Earliest start, in epoch seconds: the router's retry backoff, or a "
        "client's schedule at most SWARMHUB_NOT_BEFORE_HORIZON (3600 s) ahead.",
    )
    tried_agents: list[AgentId] = Field(
        default_factory=list,
        max_length=32,
        description="Agents already tried, avoided next time (set by the router).",
    )


class Timings(Message):
    """Where a task's time went, in milliseconds."""

    queued_ms: float = Field(
        default=0.0, description="From created_at to the dispatch of the answered attempt."
    )
    run_ms: float = Field(default=0.0, description="Time the agent spent, as it reports.")
    total_ms: float = Field(default=0.0, description="From created_at to the final result.")


class TaskResult(Message):
    """The one final result of a task."""

    task_id: str = Field(description="Id of the task.")
    status: ResultStatus = Field(description="How the task ended.")
    capability: str = Field(default="", description="Capability of the task.")
    output: Any = Field(
        default=None, description="The capability's output (any msgpack value) when succeeded."
    )
    error: ErrorInfo | None = Field(
        default=None, description="Why it did not succeed; null when it did."
    )
    agent_id: str | None = Field(
        default=None, description="Agent of the last attempt; null when none ran it."
    )
    attempts: int = Field(default=0, description="Attempts made.")
    timings: Timings = Field(default_factory=Timings, description="Where the time went.")
    cached: bool = Field(default=False, description="Output served from the memo cache.")
    finished_at: float = Field(
        default_factory=now, description="When the result was made, in epoch seconds."
    )


class RunRequest(Message):
    """A router asks one agent to run one attempt of a task."""

    task: Task = Field(description="The task as it was submitted (with any retry state).")
    attempt: int = Field(ge=1, description="Number of this attempt, from 1.")


class RunReply(Message):
    """An agent's successful answer to a RunRequest (failures travel as service errors)."""

    output: Any = Field(default=None, description="The capability's output.")
    cached: bool = Field(default=False, description="Served from the memo cache.")
    run_ms: float = Field(default=0.0, description="Milliseconds the attempt took.")


MAX_BATCH = 256
"""Most attempts one dispatch batch carries."""


class RunBatch(Message):
    """A router asks one agent to run several attempts; answers come back as BatchReply messages."""

    items: list[RunRequest] = Field(
        min_length=1, max_length=MAX_BATCH, description="Attempts to run, answered by index."
    )


class BatchItemReply(Message):
    """The answer to item `i` of a RunBatch: its RunReply, or the error it failed with."""

    i: int = Field(ge=0, lt=MAX_BATCH, description="Index of the item in its RunBatch.")
    ok: RunReply | None = Field(default=None, description="The answer when it succeeded.")
    error: ErrorInfo | None = Field(default=None, description="The error when it failed.")


class BatchReply(Message):
    """Answers to some items of one RunBatch (an agent sends them as attempts finish)."""

    items: list[BatchItemReply] = Field(
        min_length=1, max_length=MAX_BATCH, description="Answers, in any order."
    )


class AgentRegistration(Message):
    """An agent announces itself and what it can do."""

    agent_id: str = Field(
        pattern=TOKEN_PATTERN,
        description="The agent's id; must equal the last token of the subject.",
    )
    capabilities: list[str] = Field(min_length=1, description="Capabilities it runs.")
    capacity: int = Field(ge=1, le=100_000, description="Attempts it runs at once.")
    pid: int | None = Field(default=None, description="Its OS process id, for tools.")
    version: str = Field(default="", description="Its software version, free text.")


class RegisterReply(Message):
    """The coordinator's answer to a registration: how often to heartbeat."""

    agent_id: str = Field(description="The agent registered.")
    heartbeat_interval: float = Field(description="Seconds between heartbeats.")
    expire_after: float = Field(
        description="Seconds without a heartbeat after which the agent is removed."
    )


class Heartbeat(Message):
    """An agent's periodic liveness and load report; enough to re-register an expired agent."""

    agent_id: str = Field(
        pattern=TOKEN_PATTERN,
        description="The agent's id; must equal the last token of the subject.",
    )
    capabilities: list[str] = Field(min_length=1, description="Capabilities it runs.")
    capacity: int = Field(ge=1, le=100_000, description="Attempts it runs at once.")
    pid: int | None = Field(default=None, description="Its OS process id, for tools.")
    in_flight: int = Field(ge=0, description="Attempts running now.")
    completed: int = Field(default=0, ge=0, description="Attempts succeeded since start.")
    failed: int = Field(default=0, ge=0, description="Attempts failed since start.")
    draining: bool = Field(default=False, description="Finishing its work, taking no more.")
    sent_at: float = Field(default_factory=now, description="When sent, in epoch seconds.")


class LeaveRequest(Message):
    """An agent leaves on purpose: first to drain (final=False), then for good (final=True)."""

    agent_id: str = Field(
        pattern=TOKEN_PATTERN,
        description="The agent's id; must equal the last token of the subject.",
    )
    final: bool = Field(
        default=False, description="False: stop taking work (drain); true: remove it now."
    )


class Empty(Message):
    """A request that carries nothing."""


class Ack(Message):
    """A plain positive answer to a request that returns nothing else."""

    ok: bool = Field(default=True, description="Always true.")


AgentState = Literal["up", "draining"]


class AgentRecord(Message):
    """One live agent in the registry (KV bucket `hub_agents`)."""

    agent_id: str = Field(description="The agent's id; also its key in the bucket.")
    capabilities: list[str] = Field(description="Capabilities it runs.")
    capacity: int = Field(description="Attempts it runs at once.")
    in_flight: int = Field(default=0, description="Attempts running, as last reported.")
    completed: int = Field(default=0, description="Attempts succeeded, as last reported.")
    failed: int = Field(default=0, description="Attempts failed, as last reported.")
    state: AgentState = Field(
        default="up", description="up: takes work; draining: finishes its work, takes none."
    )
    registered_at: float = Field(default_factory=now, description="In epoch seconds.")
    last_seen: float = Field(default_factory=now, description="In epoch seconds.")
    pid: int | None = Field(default=None, description="Its OS process id, for tools.")


class SwarmEvent(Message):
    """A membership change: agent_up, agent_down, leader."""

    kind: Literal["agent_up", "agent_down", "leader"] = Field(
        description="Also the last token of the event's subject."
    )
    agent_id: str = Field(description="The agent; for leader, the coordinator instance id.")
    reason: str = Field(default="", description="Why an agent went down.")
    at: float = Field(default_factory=now, description="When, in epoch seconds.")


class StatusRequest(Message):
    """Ask for the state of one task by id."""

    task_id: str = Field(pattern=TOKEN_PATTERN, description="Id of the task.")


class StatusReply(Message):
    """A task's state: done (with its result) or unknown (pending or never seen)."""

    task_id: str = Field(description="Id of the task.")
    state: Literal["done", "unknown"] = Field(
        description="done: `result` is the final result; unknown: none stored (yet)."
    )
    result: TaskResult | None = Field(default=None, description="The final result, if done.")


class CancelRequest(Message):
    """Cancel one task: a queued task never runs, a running attempt is stopped on its agent."""

    task_id: str = Field(pattern=TOKEN_PATTERN, description="Id of the task.")


class CancelReply(Message):
    """What a cancellation did: cancelled it, or found it already finished."""

    task_id: str = Field(description="Id of the task.")
    state: Literal["cancelled", "finished"] = Field(
        description="cancelled: its final result is now `cancelled`; finished: it had a final "
        "result already (`result`)."
    )
    result: TaskResult = Field(description="The task's final result.")


class TaskProgress(Message):
    """One step of a task that asked for progress events (Task.progress)."""

    task_id: str = Field(description="Id of the task.")
    state: Literal["running", "retrying", "waiting"] = Field(
        description="running: dispatched to `agent_id`; retrying: the attempt failed with "
        "`error` and will be tried again; waiting: no live agent offers the capability yet."
    )
    attempt: int = Field(default=0, description="The attempt this event is about (1 = first).")
    agent_id: str | None = Field(default=None, description="The agent running the attempt.")
    error: ErrorInfo | None = Field(default=None, description="Why the attempt failed.")
    at: float = Field(default_factory=now, description="When, in epoch seconds.")


class CacheKey(Message):
    """Address of one cache entry."""

    namespace: str = Field(
        default="default", pattern=TOKEN_PATTERN, description="Keys are unique per namespace."
    )
    key: str = Field(min_length=1, max_length=1024, description="Any string.")


class CacheSet(Message):
    """Store `value` under namespace/key for `ttl` seconds (None = the service default)."""

    namespace: str = Field(
        default="default", pattern=TOKEN_PATTERN, description="Keys are unique per namespace."
    )
    key: str = Field(min_length=1, max_length=1024, description="Any string.")
    value: Any = Field(default=None, description="Any msgpack value.")
    ttl: float | None = Field(
        default=None, gt=0, description="Seconds to keep it; null = the service default."
    )


class CacheGetReply(Message):
    """Answer to a cache get."""

    hit: bool = Field(description="Whether the key had a live value.")
    value: Any = Field(default=None, description="The value on a hit, else nil.")


class CacheDelReply(Message):
    """Answer to a cache delete."""

    deleted: bool = Field(description="Whether the key existed.")


class CacheInvalidation(Message):
    """Broadcast when an entry changes, so L1 near-caches drop it."""

    namespace: str = Field(description="Namespace of the changed key.")
    key: str = Field(description="The changed key.")
    origin: str = Field(
        default="", description="Instance id of the cache service that made the change."
    )


class CacheStats(Message):
    """Counters of a cache instance."""

    entries: int = Field(description="Entries held now.")
    bytes: int = Field(description="Bytes held: values as msgpack, plus keys and namespaces.")
    hits: int = Field(description="Gets that found a live value, since start.")
    misses: int = Field(description="Gets that found none, since start.")
    sets: int = Field(description="Sets since start.")
    deletes: int = Field(description="Deletes since start.")
    evictions: int = Field(description="Entries dropped to stay within bounds.")
    expirations: int = Field(description="Entries dropped when their TTL ran out.")
    max_entries: int = Field(description="Bound on entries.")
    max_bytes: int = Field(description="Bound on bytes.")


class SwarmJob(Message):
    """One job fanned out to many agents, results gathered and reduced."""

    id: str = Field(
        default_factory=new_id,
        pattern=TOKEN_PATTERN,
        description="Job id; dispatch n runs as task id <id>-<n>.",
    )
    capability: str = Field(pattern=TOKEN_PATTERN, description="Capability to run.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="Input sent to every dispatch."
    )
    fan_out: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="Dispatches to make, round-robin over live agents; 0 = one per agent.",
    )
    reduce: Literal["list", "count", "first"] = Field(
        default="list",
        description="list: every output; count: [number of outputs]; first: [first output].",
    )
    timeout: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds to wait for each dispatch."
    )


class SwarmJobResult(Message):
    """The gathered outcome of a swarm job."""

    job_id: str = Field(description="Id of the job.")
    status: Literal["succeeded", "partial", "failed"] = Field(
        description="succeeded: no errors; partial: outputs and errors; failed: no outputs."
    )
    results: list[Any] = Field(default_factory=list, description="Outputs, as reduced.")
    errors: list[ErrorInfo] = Field(default_factory=list, description="One per failure.")
    agents: list[str] = Field(default_factory=list, description="Agent of each dispatch.")
    elapsed_ms: float = Field(default=0.0, description="From fan-out to the last answer.")


class DeadLetter(Message):
    """A task the hub gave up on, kept with its original body for inspection and replay."""

    task_id: str | None = Field(
        description="Task id; of a task rejected at intake, its Nats-Msg-Id header if valid."
    )
    capability: str = Field(description="Last token of the subject the task came on.")
    subject: str = Field(description="Subject the task was published on.")
    error: ErrorInfo = Field(description="Why the hub gave up.")
    attempts: int = Field(default=0, description="Attempts made.")
    body: bytes = Field(
        default=b"", description="The task message as stored (msgpack bytes), maybe cut."
    )
    body_truncated: bool = Field(default=False, description="Whether `body` was cut.")
    first_seen: float | None = Field(
        default=None, description="When the stream stored the task, in epoch seconds."
    )
    dead_at: float = Field(default_factory=now, description="In epoch seconds.")
