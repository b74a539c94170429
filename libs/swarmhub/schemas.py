"""Every message SwarmHub sends, as pydantic models: the single source of truth for the wire."""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

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
Proficiency = Annotated[
    dict[str, Annotated[float, Field(gt=0, le=1)]],
    Field(
        max_length=256,
        description="How good the agent is at each capability, in (0, 1]; 1 when absent. "
        "Among agents with room, routing prefers the more proficient.",
    ),
]
"""Per capability, how good an agent is at it (one definition for every agent message)."""


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
    agent: AgentId | None = Field(
        default=None,
        description="Run only on this agent (a swarm job's ensemble member); while it is away "
        "or full the task waits, and fails no_agent after SWARMHUB_NO_AGENT_WAIT without it.",
    )
    progress: bool = Field(
        default=False,
        description="Publish TaskProgress events on hub.task.progress.<tenant>.<id> as the task "
        "moves.",
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
    tenant: str | None = Field(
        default=None,
        pattern=TOKEN_PATTERN,
        description="Whose task it is (the submitter's NATS user, from its submit subject), so "
        "that a cancel names the one attempt it is for.",
    )


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
    proficiency: Proficiency = Field(default_factory=dict)
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
    proficiency: Proficiency = Field(default_factory=dict)
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
    proficiency: Proficiency = Field(default_factory=dict)
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


TaskTenant = Annotated[
    str | None,
    Field(
        pattern=TOKEN_PATTERN,
        description="Whose task: the tenant (NATS user) that submitted it. On "
        "hub.task.status|cancel.<tenant>, taken from the subject when absent and refused when it "
        "differs.",
    ),
]
"""The tenant a status or cancel request is about."""


class StatusRequest(Message):
    """Ask for the state of one task by id."""

    task_id: str = Field(pattern=TOKEN_PATTERN, description="Id of the task.")
    tenant: TaskTenant = None


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
    tenant: TaskTenant = None


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
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Seconds to keep it (finite); null = the service default.",
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


JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,96}$"
"""A job id: short enough that its sub-task ids `<job_id>-<tenant digest>-<n>` are task ids too."""
JobTenant = Annotated[
    str | None,
    Field(
        pattern=TOKEN_PATTERN,
        description="Whose job: the tenant (NATS user) that submitted it. On "
        "hub.swarm.job.submit|status|cancel.<tenant>, taken from the subject when absent and "
        "refused when it differs.",
    ),
]
"""The tenant a swarm job, or a request about one, belongs to."""
JobReduce = Literal["gather", "first", "vote", "quorum", "capability"]
JobStatus = Literal["succeeded", "partial", "failed", "timed_out", "cancelled"]
Payload = Annotated[dict[str, Any], AfterValidator(_shallow)]


class SwarmJob(Message):
    """One job run as sub-tasks on the durable task path, their results reduced to one.

    Shapes: map (`inputs`: one sub-task per input) or ensemble (`payload` to `ensemble`
    distinct agents; 0 = every live agent with the capability).
    """

    id: str = Field(
        default_factory=new_id,
        pattern=JOB_ID_PATTERN,
        description="Job id (1-96 of A-Z a-z 0-9 _ -), one tenant's own; sub-task n is the "
        "coordinator's task <id>-<tenant digest>-<n>, a user reduce task "
        "<id>-<tenant digest>-reduce (subjects.job_sub_task). Submitting an id again answers "
        "the job already stored.",
    )
    tenant: JobTenant = None
    capability: str = Field(pattern=TOKEN_PATTERN, description="Capability of every sub-task.")
    inputs: list[Payload] | None = Field(
        default=None,
        min_length=1,
        description="map: one sub-task per input, in order. null = ensemble.",
    )
    payload: Payload = Field(
        default_factory=dict, description="ensemble: the input every agent gets."
    )
    ensemble: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="ensemble: how many distinct agents run `payload`; 0 = every live agent "
        "with the capability. Must be 0 with `inputs`.",
    )
    reduce: JobReduce = Field(
        default="gather",
        description="gather: every output in order; first: the first success; vote: the most "
        "common output (ties by `tie`); quorum: an output `quorum` sub-tasks agree on; "
        "capability: the output of `reduce_capability` run on the sub-results.",
    )
    quorum: int | None = Field(
        default=None, ge=1, description="quorum: how many equal outputs are needed."
    )
    tie: Literal["fail", "lowest"] = Field(
        default="fail",
        description="vote: on a tie for most votes, fail (no_quorum), or take the tied output "
        "whose first vote came from the lowest sub-task number.",
    )
    reduce_capability: str | None = Field(
        default=None,
        pattern=TOKEN_PATTERN,
        description="capability: run once with payload {job_id, results: [JobOutcome...]}.",
    )
    deadline: EpochSeconds | None = Field(
        default=None,
        description="When the job must be done (epoch seconds); sub-tasks carry it too. Past "
        "it the job ends timed_out with what it has.",
    )
    attempt_timeout: float = Field(
        default=30.0, gt=0, le=3600, allow_inf_nan=False, description="Per sub-task attempt."
    )
    max_attempts: int = Field(default=3, ge=1, le=20, description="Per sub-task.")
    priority: Priority = Field(default=Priority.NORMAL, description="Of every sub-task.")

    @model_validator(mode="after")
    def _shape(self) -> SwarmJob:
        if self.inputs is not None and self.ensemble:
            raise ValueError("give either inputs (map) or ensemble (one payload), not both")
        if self.reduce == "quorum" and self.quorum is None:
            raise ValueError("reduce quorum needs quorum (how many outputs must agree)")
        if self.reduce == "capability" and self.reduce_capability is None:
            raise ValueError("reduce capability needs reduce_capability")
        return self


class JobOutcome(Message):
    """How one sub-task of a job ended."""

    n: int = Field(ge=0, description="Sub-task number (input index for a map).")
    status: ResultStatus = Field(description="Its final status.")
    agent_id: str | None = Field(default=None, description="Agent of its last attempt.")
    attempts: int = Field(default=0, description="Attempts made.")
    error: ErrorInfo | None = Field(default=None, description="Why it did not succeed.")
    output: Any = Field(
        default=None,
        description="Its output; null for reduce gather (the outputs are the job's `value`).",
    )


class SwarmJobResult(Message):
    """The one final result of a swarm job (KV bucket hub_jobs, key result.<tenant>.<job_id>)."""

    job_id: str = Field(description="Id of the job.")
    status: JobStatus = Field(
        description="succeeded; partial (gather with some failures); failed (nothing to "
        "reduce, no quorum or majority, or the reduce capability failed); timed_out (the "
        "deadline passed); cancelled."
    )
    capability: str = Field(default="", description="Capability of the sub-tasks.")
    reduce: JobReduce = Field(default="gather", description="How outputs were reduced.")
    value: Any = Field(
        default=None,
        description="The reduction: gather a list of outputs in sub-task order (null where "
        "one failed); first, vote and quorum the chosen output; capability its output.",
    )
    error: ErrorInfo | None = Field(default=None, description="Why the job did not succeed.")
    total: int = Field(default=0, description="Sub-tasks of the job.")
    succeeded: int = Field(default=0, description="Sub-tasks that succeeded.")
    failed: int = Field(default=0, description="Sub-tasks that ended otherwise.")
    outcomes: list[JobOutcome] = Field(
        default_factory=list, description="One per sub-task, in order."
    )
    agents: list[str] = Field(default_factory=list, description="Distinct agents that answered.")
    truncated: bool = Field(
        default=False,
        description="Outputs were left out to fit the message limit; each is still in "
        "hub_results under its sub-task id.",
    )
    elapsed_ms: float = Field(default=0.0, description="From acceptance to the final result.")
    finished_at: float = Field(default_factory=now, description="In epoch seconds.")


class JobAccepted(Message):
    """The answer to a job submission: stored, so it will end with exactly one final result."""

    job_id: str = Field(description="Id of the job.")
    total: int = Field(description="Sub-tasks it runs as.")
    accepted_at: float = Field(description="When it was first stored, in epoch seconds.")
    existing: bool = Field(default=False, description="The id was already stored.")


class JobRecord(Message):
    """A running job as stored (KV bucket hub_jobs, key job.<tenant>.<job_id>; gone at its end)."""

    job: SwarmJob = Field(description="The job as submitted.")
    accepted_at: float = Field(description="In epoch seconds; also every sub-task's created_at.")
    total: int = Field(description="Sub-tasks.")
    agents: list[str] = Field(
        default_factory=list, description="ensemble: the agent meant for each sub-task."
    )


class JobProgress(Message):
    """Where a job stands; the leader checkpoints it (key progress.<tenant>.<job_id>), sends it."""

    job_id: str = Field(description="Id of the job.")
    state: Literal["accepted", "running", "done", "unknown"] = Field(
        description="accepted: stored; running: sub-tasks queued or running; done: has its "
        "final result; unknown: no such job (or its result expired)."
    )
    total: int = Field(default=0, description="Sub-tasks.")
    succeeded: int = Field(default=0, description="Sub-tasks succeeded so far.")
    failed: int = Field(default=0, description="Sub-tasks ended otherwise so far.")
    running: int = Field(default=0, description="Sub-tasks queued or running.")
    published: bool = Field(default=False, description="Every sub-task is in the task stream.")
    status: JobStatus | None = Field(default=None, description="The final status, when done.")
    at: float = Field(default_factory=now, description="When, in epoch seconds.")
    result: SwarmJobResult | None = Field(
        default=None,
        description="The stored final result, carried by the `done` event when it fits in one "
        "message (absent otherwise: read it from the store). Only coordinators may publish job "
        "events, so it is as trustworthy as the store.",
    )

    @classmethod
    def done(cls, result: SwarmJobResult, *, carry: bool = False) -> JobProgress:
        """The progress of a job that has its final result (carrying it when `carry`)."""
        return cls(
            job_id=result.job_id,
            state="done",
            total=result.total,
            succeeded=result.succeeded,
            failed=result.failed,
            running=0,
            published=True,
            status=result.status,
            at=result.finished_at,
            result=result if carry else None,
        )


class JobRequest(Message):
    """Ask about (hub.swarm.job.status.<tenant>) or cancel (...cancel.<tenant>) a tenant's job."""

    job_id: str = Field(pattern=JOB_ID_PATTERN, description="Id of the job.")
    tenant: JobTenant = None


class JobStatusReply(Message):
    """A job's progress, with its final result once it has one."""

    progress: JobProgress = Field(description="Where it stands.")
    result: SwarmJobResult | None = Field(default=None, description="The final result, if done.")


class DeadLetter(Message):
    """A task the hub gave up on, kept with its original body for inspection and replay."""

    task_id: str | None = Field(
        description="Task id; of a task rejected at intake, its Nats-Msg-Id header if valid."
    )
    capability: str = Field(description="Capability token of the subject the task came on.")
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
