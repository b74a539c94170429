"""Who may publish and subscribe to what: one least-privilege role per kind of process.

The embedded cluster renders these into nats-server's `authorization` block; each role gets its
own user and password, and every process its own inbox prefix (`_INBOX.<user>`), so no process
can read another's replies. Nothing here grants `>` or the whole JetStream API.

The NATS user is the tenant: a client may submit tasks and swarm jobs only under its own user
name, ask about and cancel only its own, hear only their events and read only their results
(`Role.own`), so the server itself vouches for who submitted what.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import ParseResult, urlparse

from swarmhub import subjects as s

API = s.JS_API_PREFIX
PROVISIONED = (
    s.TASK_STREAM,
    s.DEAD_STREAM,
    s.kv_stream(s.RESULTS_BUCKET),
    s.kv_stream(s.AGENTS_BUCKET),
)


def _stream_admin(*streams: str) -> list[str]:
    """Create, update and look at these streams (provisioning), never delete or purge them."""
    return [f"{API}.STREAM.{op}.{name}" for name in streams for op in ("INFO", "CREATE", "UPDATE")]


def _kv_read(bucket: str) -> list[str]:
    """Bind to a bucket and get keys from it."""
    stream = s.kv_stream(bucket)
    return [
        f"{API}.STREAM.INFO.{stream}",
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
    ]


def _kv_watch(bucket: str) -> list[str]:
    """List or watch a bucket (an ephemeral ordered consumer, deleted after)."""
    stream = s.kv_stream(bucket)
    return [
        f"{API}.CONSUMER.CREATE.{stream}",
        f"{API}.CONSUMER.CREATE.{stream}.>",
        f"{API}.CONSUMER.DELETE.{stream}.>",
        f"{API}.CONSUMER.INFO.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _kv_write(bucket: str) -> list[str]:
    return [f"$KV.{bucket}.>"]


def _lane_consumers() -> list[str]:
    """Look at, create (or narrow) and pull from the durable consumer of every priority lane."""
    return [
        subject
        for consumer in map(s.lane_consumer, s.LANES)
        for subject in (
            f"{API}.CONSUMER.INFO.{s.TASK_STREAM}.{consumer}",
            f"{API}.CONSUMER.CREATE.{s.TASK_STREAM}.{consumer}.>",
            f"{API}.CONSUMER.DURABLE.CREATE.{s.TASK_STREAM}.{consumer}",
            s.consumer_next(s.TASK_STREAM, consumer),
        )
    ]


@dataclass(frozen=True)
class Role:
    """One kind of process and exactly the subjects it needs."""

    name: str
    doc: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    responds: bool = False
    max_responses: int = 1
    own: Callable[[str], Own] | None = None
    """Subjects of the user's own tenant, from its user name (publish, subscribe)."""

    def permissions(self, user: str) -> dict[str, object]:
        """nats-server permissions of one user of this role (its own inbox and tenant included)."""
        publish, subscribe = self.own(user) if self.own else ((), ())
        perms: dict[str, object] = {
            "publish": {"allow": [*self.publish, *publish]},
            "subscribe": {"allow": [*self.subscribe, *subscribe, f"{inbox_prefix(user)}.>"]},
        }
        if self.responds:
            perms["allow_responses"] = {"max": self.max_responses, "expires": "1h"}
        return perms


Own = tuple[tuple[str, ...], tuple[str, ...]]


def task_subjects(user: str) -> Own:
    """What one tenant (a NATS user) may use of the task API: its own tasks only."""
    publish = (
        s.tenant_submits(user),
        s.task_status(user),
        s.task_cancel(user),
        s.tenant_result_gets(user),
    )
    return publish, (s.tenant_results(user), s.tenant_progress(user))


def tenant_subjects(user: str) -> Own:
    """What one tenant may use of the task and swarm job APIs: its own tasks and jobs only."""
    tasks_publish, tasks_subscribe = task_subjects(user)
    jobs_publish = (s.job_submit(user), s.job_status(user), s.job_cancel(user))
    return (
        (*tasks_publish, *jobs_publish, s.tenant_job_gets(user)),
        (*tasks_subscribe, s.tenant_job_events(user)),
    )


def _first(url: str) -> ParseResult:
    """The first URL of `url` (one or a comma list), parsed: the one whose user logs in."""
    return urlparse(url.split(",")[0].strip())


def tenant_for(url: str) -> str:
    """The tenant a connection to `url` acts as: its user name, else the open-mode tenant."""
    return _first(url).username or s.OPEN_TENANT


def dedupe_key_for(url: str) -> bytes | None:
    """The key of a connection's submit ids (`subjects.submit_id`), derived from its password
    so that no other user can compute it; None without a password (open mode)."""
    password = _first(url).password
    if not password:
        return None
    return hashlib.blake2b(password.encode(), digest_size=32, person=b"swarmhub-dedupe").digest()


def inbox_prefix(user: str) -> str:
    """The inbox prefix of one user: replies to it can be read by no one else."""
    return f"_INBOX.{user}"


def inbox_for(url: str) -> str:
    """The inbox prefix a connection to `url` must use: its user's own, else the default."""
    user = _first(url).username
    return inbox_prefix(user) if user else "_INBOX"


ROUTER = Role(
    "router",
    "consumes the task stream, dispatches to agents, records results, dead-letters",
    publish=(
        s.AGENT_RUN_ALL,
        s.AGENT_BATCH_ALL,
        s.AGENT_CANCEL_ALL,
        s.TASK_SUBMIT_ALL,
        s.TASK_DEAD_ALL,
        s.TASK_CANCELLED_ALL,
        s.TASK_PROGRESS_ALL,
        f"$JS.ACK.{s.TASK_STREAM}.>",
        *_lane_consumers(),
        *_stream_admin(*PROVISIONED),
        *_kv_read(s.RESULTS_BUCKET),
        *_kv_write(s.RESULTS_BUCKET),
        *_kv_read(s.AGENTS_BUCKET),
        *_kv_watch(s.AGENTS_BUCKET),
    ),
    subscribe=(s.TASK_STATUS_ALL, s.TASK_CANCEL_ALL, s.TASK_CANCELLED_ALL, s.SRV_ALL),
    responds=True,
)


def worker(agent_id: str | None = None) -> Role:
    """The role of one agent-worker: only its own agent id's subjects (any id when None)."""
    run = s.agent_run(agent_id) if agent_id else s.AGENT_RUN_ALL
    batch = s.agent_batch(agent_id) if agent_id else s.AGENT_BATCH_ALL
    cancel = s.agent_cancel(agent_id) if agent_id else s.AGENT_CANCEL_ALL
    membership = (
        (s.swarm_register(agent_id), s.swarm_leave(agent_id), s.swarm_heartbeat(agent_id))
        if agent_id
        else (s.SWARM_REGISTER_ALL, s.SWARM_LEAVE_ALL, s.SWARM_HEARTBEAT_ALL)
    )
    return Role(
        "worker",
        "runs tasks sent to its own agent id; registers, beats and leaves as that id only",
        publish=(*membership, s.CACHE_GET, s.CACHE_SET, s.CACHE_MEMO_SET, s.CACHE_DEL),
        subscribe=(run, batch, cancel, s.CACHE_INVAL_ALL, s.SRV_ALL),
        responds=True,
        # A batch is answered in up to one message per task.
        max_responses=256,
    )


WORKER = worker()

COORDINATOR = Role(
    "coordinator",
    "membership, the agent registry and leader lease, swarm jobs (sub-tasks through the stream)",
    publish=(
        s.SWARM_EVENT_ALL,
        s.SWARM_JOB_EVENT_ALL,
        s.SWARM_JOB_ADOPT,
        *_stream_admin(*PROVISIONED, s.kv_stream(s.LEADER_BUCKET), s.kv_stream(s.JOBS_BUCKET)),
        *_kv_read(s.AGENTS_BUCKET),
        *_kv_write(s.AGENTS_BUCKET),
        *_kv_watch(s.AGENTS_BUCKET),
        f"{API}.STREAM.PURGE.{s.kv_stream(s.AGENTS_BUCKET)}",
        *_kv_read(s.LEADER_BUCKET),
        *_kv_write(s.LEADER_BUCKET),
        *_kv_read(s.JOBS_BUCKET),
        *_kv_write(s.JOBS_BUCKET),
        *_kv_watch(s.JOBS_BUCKET),
        f"{API}.STREAM.PURGE.{s.kv_stream(s.JOBS_BUCKET)}",
    ),
    subscribe=(
        s.SWARM_REGISTER_ALL,
        s.SWARM_LEAVE_ALL,
        s.SWARM_HEARTBEAT_ALL,
        s.SWARM_JOB_ALL,
        s.SRV_ALL,
    ),
    responds=True,
    # Swarm jobs run as ordinary tasks of the coordinator's own tenant: submitted to the stream,
    # cancelled through routers, their results read as any tenant reads its own.
    own=task_subjects,
)

CACHE = Role(
    "cache",
    "serves the shared cache, broadcasts invalidations",
    publish=(s.CACHE_INVAL_ALL,),
    subscribe=(
        s.CACHE_GET,
        s.CACHE_SET,
        s.CACHE_MEMO_SET,
        s.CACHE_DEL,
        s.CACHE_STATS,
        s.SRV_ALL,
    ),
    responds=True,
)

CLIENT = Role(
    "client",
    "submits tasks and swarm jobs, reads results and the registry, uses the cache, discovers",
    # Swarm jobs as tasks: its own only (`tenant_subjects`), never the whole jobs bucket.
    publish=(
        s.CACHE_GET,
        s.CACHE_SET,
        s.CACHE_DEL,
        s.CACHE_STATS,
        s.SRV_ALL,
        *_kv_read(s.AGENTS_BUCKET),
        *_kv_watch(s.AGENTS_BUCKET),
    ),
    subscribe=(s.SWARM_EVENT_ALL,),
    own=tenant_subjects,
)

OPERATOR = Role(
    "operator",
    "what a client may, plus dead letters (list, replay) and stand-in agents for load tests",
    publish=(
        *CLIENT.publish,
        f"{API}.INFO",
        # The task stream's state: its per-subject counts name every tenant with tasks waiting.
        f"{API}.STREAM.INFO.{s.TASK_STREAM}",
        s.SWARM_REGISTER_ALL,
        s.SWARM_LEAVE_ALL,
        s.SWARM_HEARTBEAT_ALL,
        f"{API}.STREAM.INFO.{s.DEAD_STREAM}",
        f"{API}.STREAM.MSG.GET.{s.DEAD_STREAM}",
        f"{API}.DIRECT.GET.{s.DEAD_STREAM}",
        f"{API}.STREAM.MSG.DELETE.{s.DEAD_STREAM}",
        f"{API}.CONSUMER.CREATE.{s.DEAD_STREAM}",
        f"{API}.CONSUMER.CREATE.{s.DEAD_STREAM}.>",
        f"{API}.CONSUMER.DELETE.{s.DEAD_STREAM}.>",
        f"{API}.CONSUMER.INFO.{s.DEAD_STREAM}.>",
    ),
    subscribe=CLIENT.subscribe,
    own=tenant_subjects,
)

ROLES = {r.name: r for r in (ROUTER, WORKER, COORDINATOR, CACHE, CLIENT, OPERATOR)}
SERVICE_ROLES = {
    "task_router": ROUTER,
    "agent_worker": WORKER,
    "swarm_coordinator": COORDINATOR,
    "cache_service": CACHE,
}


def authorization_block(users: dict[str, tuple[Role, str]], *, env_passwords: bool = False) -> str:
    """nats-server `authorization` config for `users` (name -> (role, password)).

    With env_passwords, each password is a `$NATS_<USER>_PASSWORD` reference that nats-server
    reads from its environment (and refuses to start without), for shipped configs.
    """
    lines = ["authorization {", "  users = ["]
    for user, (role, password) in sorted(users.items()):
        secret = f"$NATS_{user.upper()}_PASSWORD" if env_passwords else json.dumps(password)
        perms = json.dumps(role.permissions(user))
        lines.append(f"    {{user: {json.dumps(user)}, password: {secret}, permissions: {perms}}}")
    lines += ["  ]", "}"]
    return "\n".join(lines)


ACCOUNTS_HEADER = """\
# Per-role NATS users and least-privilege permissions for SwarmHub deployments (compose, k8s).
# GENERATED from libs/swarmhub/roles.py by `python -m swarmhub.roles`; a test keeps it in step.
#
# Use it by adding `include ./accounts.conf` to nats.conf (or to each cluster node config) and
# pointing each service at its own user (its inbox prefix follows from the user name):
#
#   SWARMHUB_NATS_URL=nats://router:${NATS_ROUTER_PASSWORD}@nats:4222
#
# Passwords are never written here: each `$NATS_*_PASSWORD` is read from the environment of the
# nats-server process, and the server refuses to start if one is missing. Workers share one user
# here (scaled replicas); `swarmhub up` gives each worker its own, scoped to its agent id.
"""


def accounts_conf() -> str:
    """The shipped deploy/nats/accounts.conf: every role, passwords from the environment."""
    users = {name: (role, "") for name, role in ROLES.items()}
    return ACCOUNTS_HEADER + "\n" + authorization_block(users, env_passwords=True) + "\n"


if __name__ == "__main__":
    print(accounts_conf(), end="")
