"""Every NATS subject, stream, consumer and bucket name SwarmHub uses, built in one place."""

from __future__ import annotations

import re

PREFIX = "hub"

TASK_STREAM = "HUB_TASKS"
DEAD_STREAM = "HUB_DEAD"
ROUTER_CONSUMER = "task-router"
"""Durable consumer of the normal lane; each other lane's is `task-router-<lane>`."""
RESULTS_BUCKET = "hub_results"
AGENTS_BUCKET = "hub_agents"
LEADER_BUCKET = "hub_leader"
LEADER_KEY = "coordinator"
JOBS_BUCKET = "hub_jobs"

TASK_SUBMIT_ALL = f"{PREFIX}.task.submit.>"
LANES = ("critical", "high", "normal", "low")
"""Priority lanes, most urgent first (the values of schemas.Priority)."""
DEFAULT_LANE = "normal"
"""The lane of a submit subject without a lane token: every task published before lanes existed."""
TASK_RESULT_ALL = f"{PREFIX}.task.result.>"
TASK_DEAD_ALL = f"{PREFIX}.task.dead.>"
TASK_STATUS = f"{PREFIX}.task.status"
TASK_CANCEL = f"{PREFIX}.task.cancel"
TASK_CANCELLED_ALL = f"{PREFIX}.task.cancelled.>"
TASK_PROGRESS_ALL = f"{PREFIX}.task.progress.>"

SWARM_REGISTER_ALL = f"{PREFIX}.swarm.register.*"
SWARM_LEAVE_ALL = f"{PREFIX}.swarm.leave.*"
SWARM_HEARTBEAT_ALL = f"{PREFIX}.swarm.heartbeat.*"
SWARM_EVENT_ALL = f"{PREFIX}.swarm.event.>"
SWARM_JOB_ALL = f"{PREFIX}.swarm.job.>"
SWARM_JOB_SUBMIT = f"{PREFIX}.swarm.job.submit"
SWARM_JOB_STATUS = f"{PREFIX}.swarm.job.status"
SWARM_JOB_CANCEL = f"{PREFIX}.swarm.job.cancel"
SWARM_JOB_ADOPT = f"{PREFIX}.swarm.job.adopt"
SWARM_JOB_EVENT_ALL = f"{PREFIX}.swarm.job.event.>"

CACHE_GET = f"{PREFIX}.cache.get"
CACHE_SET = f"{PREFIX}.cache.set"
CACHE_DEL = f"{PREFIX}.cache.del"
CACHE_STATS = f"{PREFIX}.cache.stats"
CACHE_INVAL_ALL = f"{PREFIX}.cache.inval.>"
CACHE_MEMO_SET = f"{PREFIX}.cache.memo.set"
MEMO_NAMESPACE = "memo"
"""Cache namespace of memoized capability outputs: written only on CACHE_MEMO_SET, by workers."""

AGENT_RUN_ALL = f"{PREFIX}.agent.*.run"
AGENT_BATCH_ALL = f"{PREFIX}.agent.*.batch"
AGENT_CANCEL_ALL = f"{PREFIX}.agent.*.cancel"

SRV_PREFIX = "$SRV"
SRV_ALL = f"{SRV_PREFIX}.>"
JS_API_PREFIX = "$JS.API"

# Subject templates, used as span names so that ids never leak into trace names.
TEMPLATES = {
    "submit": f"{PREFIX}.task.submit.{{capability}}",
    "submit_lane": f"{PREFIX}.task.submit.{{capability}}.{{priority}}",
    "result": f"{PREFIX}.task.result.{{task_id}}",
    "dead": f"{PREFIX}.task.dead.{{capability}}",
    "run": f"{PREFIX}.agent.{{agent_id}}.run",
    "batch": f"{PREFIX}.agent.{{agent_id}}.batch",
    "agent_cancel": f"{PREFIX}.agent.{{agent_id}}.cancel",
    "cancelled": f"{PREFIX}.task.cancelled.{{task_id}}",
    "progress": f"{PREFIX}.task.progress.{{task_id}}",
    "heartbeat": f"{PREFIX}.swarm.heartbeat.{{agent_id}}",
    "register": f"{PREFIX}.swarm.register.{{agent_id}}",
    "leave": f"{PREFIX}.swarm.leave.{{agent_id}}",
    "event": f"{PREFIX}.swarm.event.{{kind}}",
    "job_event": f"{PREFIX}.swarm.job.event.{{job_id}}",
    "inval": f"{PREFIX}.cache.inval.{{namespace}}",
}

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_SUBMIT_DEPTH = TASK_SUBMIT_ALL.count(".")
"""Index of the capability token in a submit subject (the lane token follows it)."""


def check_token(value: str, what: str) -> str:
    """Return value if it is a valid single subject token, else raise ValueError naming it."""
    if not _TOKEN.match(value):
        raise ValueError(
            f"Invalid {what} {value!r}. A {what} must contain only A-Z, a-z, 0-9, - and _."
        )
    return value


def check_lane(lane: str) -> str:
    """Return lane if it is a priority lane, else raise ValueError naming the lanes."""
    if lane not in LANES:
        raise ValueError(
            f"Invalid priority {lane!r}. A priority must be one of {', '.join(LANES)}."
        )
    return lane


def task_submit(capability: str, priority: str = DEFAULT_LANE) -> str:
    """Subject a task for `capability` in lane `priority` is published to (the task stream's).

    The normal lane has no lane token (`hub.task.submit.<capability>`, as before lanes existed);
    the others end in theirs (`hub.task.submit.<capability>.<priority>`).
    """
    subject = f"{PREFIX}.task.submit.{check_token(capability, 'capability')}"
    if priority == DEFAULT_LANE:
        return subject
    return f"{subject}.{check_lane(priority)}"


def submit_template(priority: str = DEFAULT_LANE) -> str:
    """The span template of a submit subject in lane `priority`."""
    return TEMPLATES["submit"] if priority == DEFAULT_LANE else TEMPLATES["submit_lane"]


def lane_filter(lane: str) -> str:
    """The submit subjects of one lane: the task stream's subjects and its consumer's filter."""
    if lane == DEFAULT_LANE:
        return f"{PREFIX}.task.submit.*"
    return f"{PREFIX}.task.submit.*.{check_lane(lane)}"


def lane_consumer(lane: str) -> str:
    """Durable consumer the routers share for one lane (the normal lane keeps the old name)."""
    if lane == DEFAULT_LANE:
        return ROUTER_CONSUMER
    return f"{ROUTER_CONSUMER}-{check_lane(lane)}"


def lane_of(subject: str) -> str:
    """The lane of a task submit subject."""
    parts = subject.split(".")
    return parts[_SUBMIT_DEPTH + 1] if len(parts) > _SUBMIT_DEPTH + 1 else DEFAULT_LANE


def task_result(task_id: str) -> str:
    """Subject the final result event of one task is published on."""
    return f"{PREFIX}.task.result.{check_token(task_id, 'task id')}"


def task_cancelled(task_id: str) -> str:
    """Subject every router hears a cancellation of one task on."""
    return f"{PREFIX}.task.cancelled.{check_token(task_id, 'task id')}"


def task_progress(task_id: str) -> str:
    """Subject the progress events of one task (when it asked for them) are published on."""
    return f"{PREFIX}.task.progress.{check_token(task_id, 'task id')}"


def task_dead(capability: str) -> str:
    """Subject a dead-lettered task is recorded on (captured by the dead-letter stream)."""
    token = capability if _TOKEN.match(capability) else "_invalid"
    return f"{PREFIX}.task.dead.{token}"


def agent_run(agent_id: str) -> str:
    """Subject one agent serves task execution requests on."""
    return f"{PREFIX}.agent.{check_token(agent_id, 'agent id')}.run"


def agent_batch(agent_id: str) -> str:
    """Subject one agent serves batches of task execution requests on (answers stream back)."""
    return f"{PREFIX}.agent.{check_token(agent_id, 'agent id')}.batch"


def agent_cancel(agent_id: str) -> str:
    """Subject one agent hears cancellations of the attempts it runs on."""
    return f"{PREFIX}.agent.{check_token(agent_id, 'agent id')}.cancel"


def swarm_register(agent_id: str) -> str:
    """Subject an agent registers on: its own id, so permissions can scope it to that id."""
    return f"{PREFIX}.swarm.register.{check_token(agent_id, 'agent id')}"


def swarm_leave(agent_id: str) -> str:
    """Subject an agent leaves on (to drain, then for good)."""
    return f"{PREFIX}.swarm.leave.{check_token(agent_id, 'agent id')}"


def swarm_heartbeat(agent_id: str) -> str:
    """Subject an agent publishes its heartbeats on."""
    return f"{PREFIX}.swarm.heartbeat.{check_token(agent_id, 'agent id')}"


def swarm_event(kind: str) -> str:
    """Subject a swarm membership event of `kind` is published on."""
    return f"{PREFIX}.swarm.event.{check_token(kind, 'event kind')}"


def swarm_job_event(job_id: str) -> str:
    """Subject the progress events of one swarm job are published on (by the coordinator only)."""
    return f"{PREFIX}.swarm.job.event.{check_token(job_id, 'job id')}"


def job_key(kind: str, job_id: str) -> str:
    """Key of one swarm job's `kind` entry (job, result, progress) in the jobs bucket."""
    return f"{kind}.{check_token(job_id, 'job id')}"


def cache_inval(namespace: str) -> str:
    """Subject invalidations of one cache namespace are broadcast on."""
    return f"{PREFIX}.cache.inval.{check_token(namespace, 'namespace')}"


def consumer_next(stream: str, consumer: str, api_prefix: str = JS_API_PREFIX) -> str:
    """Subject a pull request for the next messages of a durable consumer is sent to."""
    return f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"


def stream_info(stream: str, api_prefix: str = JS_API_PREFIX) -> str:
    """Subject a stream's info (config and state, with its oldest message's time) is asked on."""
    return f"{api_prefix}.STREAM.INFO.{stream}"


def kv_stream(bucket: str) -> str:
    """Name of the stream behind a KV bucket."""
    return f"KV_{bucket}"


def kv_keys(bucket: str) -> str:
    """Every key subject of a KV bucket (`$KV.<bucket>.>`)."""
    return f"$KV.{bucket}.>"


RESULT_REPUBLISH = (kv_keys(RESULTS_BUCKET), TASK_RESULT_ALL)
"""The results bucket's stream republishes each result once stored: key `<id>` becomes the event
`hub.task.result.<id>`. A write JetStream refuses (a second result) is never republished."""


def capability_of(subject: str) -> str:
    """Return the capability token of a task submit subject (of any lane)."""
    parts = subject.split(".", _SUBMIT_DEPTH + 1)
    return parts[_SUBMIT_DEPTH] if len(parts) > _SUBMIT_DEPTH else parts[-1]


def srv_subjects(verb: str, name: str, instance_id: str) -> list[str]:
    """The three ADR-32 discovery subjects one service instance answers for `verb`."""
    return [
        f"{SRV_PREFIX}.{verb}",
        f"{SRV_PREFIX}.{verb}.{name}",
        f"{SRV_PREFIX}.{verb}.{name}.{instance_id}",
    ]
