"""Every NATS subject, stream, consumer and bucket name SwarmHub uses, built in one place."""

from __future__ import annotations

import hashlib
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
TASK_STATUS_ALL = f"{PREFIX}.task.status.*"
TASK_CANCEL_ALL = f"{PREFIX}.task.cancel.*"
OPEN_TENANT = "_open"
"""Tenant of a connection without a user name (open mode, where nobody's identity is checked)."""
TASK_CANCELLED_ALL = f"{PREFIX}.task.cancelled.>"
TASK_PROGRESS_ALL = f"{PREFIX}.task.progress.>"

SWARM_REGISTER_ALL = f"{PREFIX}.swarm.register.*"
SWARM_LEAVE_ALL = f"{PREFIX}.swarm.leave.*"
SWARM_HEARTBEAT_ALL = f"{PREFIX}.swarm.heartbeat.*"
SWARM_EVENT_ALL = f"{PREFIX}.swarm.event.>"
SWARM_JOB_ALL = f"{PREFIX}.swarm.job.>"
SWARM_JOB_SUBMIT_ALL = f"{PREFIX}.swarm.job.submit.*"
SWARM_JOB_STATUS_ALL = f"{PREFIX}.swarm.job.status.*"
SWARM_JOB_CANCEL_ALL = f"{PREFIX}.swarm.job.cancel.*"
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
    "submit": f"{PREFIX}.task.submit.{{tenant}}.{{capability}}.{{priority}}",
    "result": f"{PREFIX}.task.result.{{tenant}}.{{task_id}}",
    "status": f"{PREFIX}.task.status.{{tenant}}",
    "cancel": f"{PREFIX}.task.cancel.{{tenant}}",
    "dead": f"{PREFIX}.task.dead.{{capability}}",
    "run": f"{PREFIX}.agent.{{agent_id}}.run",
    "batch": f"{PREFIX}.agent.{{agent_id}}.batch",
    "agent_cancel": f"{PREFIX}.agent.{{agent_id}}.cancel",
    "cancelled": f"{PREFIX}.task.cancelled.{{tenant}}.{{task_id}}",
    "progress": f"{PREFIX}.task.progress.{{tenant}}.{{task_id}}",
    "heartbeat": f"{PREFIX}.swarm.heartbeat.{{agent_id}}",
    "register": f"{PREFIX}.swarm.register.{{agent_id}}",
    "leave": f"{PREFIX}.swarm.leave.{{agent_id}}",
    "event": f"{PREFIX}.swarm.event.{{kind}}",
    "job_submit": f"{PREFIX}.swarm.job.submit.{{tenant}}",
    "job_status": f"{PREFIX}.swarm.job.status.{{tenant}}",
    "job_cancel": f"{PREFIX}.swarm.job.cancel.{{tenant}}",
    "job_event": f"{PREFIX}.swarm.job.event.{{tenant}}.{{job_id}}",
    "inval": f"{PREFIX}.cache.inval.{{namespace}}",
}

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_SUBMIT_DEPTH = TASK_SUBMIT_ALL.count(".")
"""Index of the tenant token in a submit subject (capability and lane follow it)."""


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


def _of_tenant(path: str, tenant: str, tail: str = "") -> str:
    """`hub.<path>.<tenant><tail>`: a subject (or wildcard) of one tenant's own."""
    return f"{PREFIX}.{path}.{check_token(tenant, 'tenant')}{tail}"


def task_submit(tenant: str, capability: str, priority: str = DEFAULT_LANE) -> str:
    """Subject `tenant`'s task for `capability` in lane `priority` is published to.

    `hub.task.submit.<tenant>.<capability>.<priority>`: the tenant is the submitter's NATS user,
    so server permissions (each client may publish under its own user only) vouch for it.
    """
    return (
        f"{PREFIX}.task.submit.{check_token(tenant, 'tenant')}."
        f"{check_token(capability, 'capability')}.{check_lane(priority)}"
    )


def tenant_submits(tenant: str) -> str:
    """Every submit subject of one tenant (what its permissions let it publish)."""
    return _of_tenant("task.submit", tenant, ".>")


def submit_template(priority: str = DEFAULT_LANE) -> str:
    """The span template of a submit subject (the same in every lane)."""
    return TEMPLATES["submit"]


def lane_filter(lane: str) -> str:
    """The submit subjects of one lane (every tenant, every capability)."""
    return f"{PREFIX}.task.submit.*.*.{check_lane(lane)}"


def lane_filters(lane: str) -> list[str]:
    """What the task stream captures and one lane's consumer takes: the lane's submit subjects,
    then those of before tenants (`hub.task.submit.<capability>[.<lane>]`, read as the open-mode
    tenant's), so that tasks stored before an upgrade still run."""
    legacy = f"{PREFIX}.task.submit.*"
    return [lane_filter(lane), legacy if lane == DEFAULT_LANE else f"{legacy}.{lane}"]


def lane_consumer(lane: str) -> str:
    """Durable consumer the routers share for one lane (the normal lane keeps the old name)."""
    if lane == DEFAULT_LANE:
        return ROUTER_CONSUMER
    return f"{ROUTER_CONSUMER}-{check_lane(lane)}"


def submit_parts(subject: str) -> tuple[str, str, str]:
    """(tenant, capability, lane) of a task submit subject; one from before tenants (without a
    tenant token) is the open-mode tenant's."""
    parts = subject.split(".")[_SUBMIT_DEPTH:]
    if len(parts) >= 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return OPEN_TENANT, parts[0], parts[1]
    return OPEN_TENANT, parts[0] if parts else "", DEFAULT_LANE


def lane_of(subject: str) -> str:
    """The lane of a task submit subject."""
    return submit_parts(subject)[2]


def tenant_of(subject: str) -> str:
    """The tenant (submitter's NATS user) of a task submit subject."""
    return submit_parts(subject)[0]


def task_result(tenant: str, task_id: str) -> str:
    """Subject the final result event of one tenant's task is published on."""
    return f"{PREFIX}.task.result.{_scoped(tenant, task_id)}"


def tenant_results(tenant: str) -> str:
    """The result events of every task of one tenant."""
    return _of_tenant("task.result", tenant, ".>")


def result_key(tenant: str, task_id: str) -> str:
    """Key of one tenant's task's final result in the results bucket: `<tenant>.<task id>`."""
    return _scoped(tenant, task_id)


def submit_id(tenant: str, task_id: str, key: bytes | None = None) -> str:
    """A submit's `Nats-Msg-Id`: `<tenant>.<task id>`, then a tag keyed with `key` when given.

    JetStream dedupes by this id whatever subject a message came on, so a tenant that learned
    another's task id early could publish that id first and make the real submit a duplicate.
    With the tag (the same on every retry) only the tenant's own clients can write its ids.
    """
    return tagged_id(_scoped(tenant, task_id), key)


def tagged_id(msg_id: str, key: bytes | None) -> str:
    """`msg_id` followed by `.<tag>`, a BLAKE2b of it keyed with `key` (unchanged without one)."""
    if key is None:
        return msg_id
    return f"{msg_id}.{hashlib.blake2b(msg_id.encode(), key=key, digest_size=8).hexdigest()}"


def tenant_result_gets(tenant: str, api_prefix: str = JS_API_PREFIX) -> str:
    """Direct gets of one tenant's keys of the results bucket, and of no one else's."""
    stream = kv_stream(RESULTS_BUCKET)
    return (
        f"{api_prefix}.DIRECT.GET.{stream}.$KV.{RESULTS_BUCKET}.{check_token(tenant, 'tenant')}.>"
    )


def task_status(tenant: str) -> str:
    """Subject one tenant asks the routers for the state of its own tasks on."""
    return _of_tenant("task.status", tenant)


def task_cancel(tenant: str) -> str:
    """Subject one tenant asks the routers to cancel its own tasks on."""
    return _of_tenant("task.cancel", tenant)


def task_cancelled(tenant: str, task_id: str) -> str:
    """Subject every router hears a cancellation of one tenant's task on."""
    return f"{PREFIX}.task.cancelled.{_scoped(tenant, task_id)}"


def task_progress(tenant: str, task_id: str) -> str:
    """Subject the progress events of a tenant's task (when it asked for them) go out on."""
    return f"{PREFIX}.task.progress.{_scoped(tenant, task_id)}"


def tenant_progress(tenant: str) -> str:
    """The progress events of every task of one tenant."""
    return _of_tenant("task.progress", tenant, ".>")


def scoped_of(subject: str) -> tuple[str, str]:
    """(tenant, task id) of a result, progress or cancelled subject."""
    tenant, task_id = subject.rsplit(".", 2)[-2:]
    return tenant, task_id


def _scoped(tenant: str, task_id: str) -> str:
    return f"{check_token(tenant, 'tenant')}.{check_token(task_id, 'task id')}"


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


def job_submit(tenant: str) -> str:
    """Subject one tenant submits its swarm jobs on (its permissions allow its own only)."""
    return _of_tenant("swarm.job.submit", tenant)


def job_status(tenant: str) -> str:
    """Subject one tenant asks where its own swarm jobs stand on."""
    return _of_tenant("swarm.job.status", tenant)


def job_cancel(tenant: str) -> str:
    """Subject one tenant cancels its own swarm jobs on."""
    return _of_tenant("swarm.job.cancel", tenant)


def swarm_job_event(tenant: str, job_id: str) -> str:
    """Subject the progress events of one tenant's swarm job are published on (by the
    coordinator only): `hub.swarm.job.event.<tenant>.<job id>`."""
    return _of_tenant("swarm.job.event", tenant, f".{check_token(job_id, 'job id')}")


def tenant_job_events(tenant: str) -> str:
    """The progress events of every swarm job of one tenant."""
    return _of_tenant("swarm.job.event", tenant, ".*")


JOB_KINDS = ("job", "progress", "result")
"""Entries of one swarm job in the jobs bucket: its record, checkpoint and final result."""


def job_key(kind: str, tenant: str, job_id: str) -> str:
    """Key of one tenant's swarm job's `kind` entry in the jobs bucket:
    `<kind>.<tenant>.<job id>` (job ids are per tenant, as task ids)."""
    return f"{_job_kind(kind)}.{check_token(tenant, 'tenant')}.{check_token(job_id, 'job id')}"


def legacy_job_key(kind: str, job_id: str) -> str:
    """Key a hub from before tenants kept a swarm job's `kind` entry under: `<kind>.<job id>`
    (read as the open-mode tenant's job)."""
    return f"{_job_kind(kind)}.{check_token(job_id, 'job id')}"


def job_of_key(key: str) -> tuple[str, str, bool]:
    """(tenant, job id, legacy) of a jobs bucket key; a key from before tenants (legacy, without
    a tenant token) is the open-mode tenant's."""
    parts = key.split(".")
    if len(parts) == 2:
        return OPEN_TENANT, parts[1], True
    if len(parts) == 3:
        return parts[1], parts[2], False
    raise ValueError(f"Invalid jobs bucket key {key[:200]!r}. A key is <kind>.<tenant>.<job id>.")


def tenant_job_gets(tenant: str, api_prefix: str = JS_API_PREFIX) -> str:
    """Direct gets of one tenant's keys of the jobs bucket (every kind), and of no one else's."""
    stream = kv_stream(JOBS_BUCKET)
    return f"{api_prefix}.DIRECT.GET.{stream}.$KV.{JOBS_BUCKET}.*.{check_token(tenant, 'tenant')}.*"


def job_sub_task(tenant: str, job_id: str, n: int | str) -> str:
    """Task id of sub-task `n` ("reduce": the reduce task) of one tenant's swarm job:
    `<job id>-<tenant digest>-<n>`.

    Sub-tasks all run as the coordinator's own tenant, so the job's tenant must be in the id: a
    fixed-length digest of it (a tenant name may be 128 characters, a task id no longer), read
    from the right, never makes two tenants' ids of one job id, nor of two job ids, the same.
    """
    return f"{check_token(job_id, 'job id')}-{tenant_digest(tenant)}-{n}"


def legacy_job_sub_task(job_id: str, n: int | str) -> str:
    """Task id of sub-task `n` of a swarm job stored before tenants: `<job id>-<n>`."""
    return f"{check_token(job_id, 'job id')}-{n}"


def tenant_digest(tenant: str) -> str:
    """16 hex digits that stand for a tenant in ids too short to hold its name."""
    data = check_token(tenant, "tenant").encode()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _job_kind(kind: str) -> str:
    if kind not in JOB_KINDS:
        raise ValueError(f"Invalid job entry {kind!r}. It must be one of {', '.join(JOB_KINDS)}.")
    return kind


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
"""The results bucket's stream republishes each result once stored: key `<tenant>.<id>` becomes
the event `hub.task.result.<tenant>.<id>`. A write JetStream refuses (a second result) is never
republished."""


def capability_of(subject: str) -> str:
    """Return the capability token of a task submit subject (of any lane)."""
    return submit_parts(subject)[1]


def srv_subjects(verb: str, name: str, instance_id: str) -> list[str]:
    """The three ADR-32 discovery subjects one service instance answers for `verb`."""
    return [
        f"{SRV_PREFIX}.{verb}",
        f"{SRV_PREFIX}.{verb}.{name}",
        f"{SRV_PREFIX}.{verb}.{name}.{instance_id}",
    ]
