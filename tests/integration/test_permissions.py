"""The deny matrix: every role, against a real nats-server with the embedded cluster's users,
is refused every subject and JetStream operation its job does not need; nothing lands anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.errors import KeyWrongLastSequenceError

from swarmhub import provision, subjects
from swarmhub.credentials import Credentials, User, load_or_create, with_user
from swarmhub.embedded import NatsServer
from swarmhub.roles import authorization_block, inbox_for

API = subjects.JS_API_PREFIX
OTHER_AGENT = "agent-someone-else"
OTHER_TENANT = "someone-else"
JOBS_STREAM = subjects.kv_stream(subjects.JOBS_BUCKET)
KINDS = subjects.JOB_KINDS


def _job_get(key: str) -> str:
    """The direct get of one key of the jobs bucket (as a KV get by direct get sends it)."""
    return f"{API}.DIRECT.GET.{JOBS_STREAM}.$KV.{subjects.JOBS_BUCKET}.{key}"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, Credentials]]:
    data = tmp_path_factory.mktemp("secured")
    creds = load_or_create(data, workers=1, clients=2)
    server = NatsServer(data / "nats", authorization=authorization_block(creds.authorization()))
    server.start()
    try:
        yield server, creds
    finally:
        server.stop()


async def _connect(url: str, errors: list[str]) -> nats.NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    return await nats.connect(
        url, error_cb=on_error, inbox_prefix=inbox_for(url), allow_reconnect=False
    )


@pytest.fixture
async def provisioned(secured: tuple[NatsServer, Credentials]) -> AsyncIterator[None]:
    server, creds = secured
    nc = await _connect(with_user(server.url, creds.user("router")), [])
    await provision.ensure_all(nc.jetstream())
    await nc.close()
    yield


def _denied_everywhere(me: User) -> list[tuple[str, str]]:
    """(pub|sub, subject) that no role needs, plus other roles' subjects this one must not use."""
    agent = me.agent_id or "nobody"
    cells = [
        ("sub", ">"),
        ("sub", "_INBOX.>"),
        ("sub", "hub.>"),
        ("sub", f"_INBOX.{'client' if me.role != 'client' else 'router'}.>"),
        ("sub", subjects.agent_run(OTHER_AGENT)),
        ("sub", subjects.agent_batch(OTHER_AGENT)),
        ("pub", f"{API}.STREAM.DELETE.{subjects.TASK_STREAM}"),
        ("pub", f"{API}.STREAM.PURGE.{subjects.TASK_STREAM}"),
        ("pub", f"{API}.STREAM.MSG.GET.{subjects.TASK_STREAM}"),
        ("pub", f"{API}.DIRECT.GET.{subjects.TASK_STREAM}"),
        ("pub", f"{API}.CONSUMER.CREATE.{subjects.TASK_STREAM}"),
        ("pub", f"{API}.CONSUMER.CREATE.{subjects.TASK_STREAM}.thief.>"),
        ("pub", f"{API}.CONSUMER.DELETE.{subjects.TASK_STREAM}.{subjects.ROUTER_CONSUMER}"),
        ("pub", f"{API}.CONSUMER.DELETE.{subjects.TASK_STREAM}.{subjects.lane_consumer('low')}"),
        ("pub", f"{API}.STREAM.CREATE.EVIL"),
        ("pub", f"{API}.STREAM.DELETE.{subjects.kv_stream(subjects.RESULTS_BUCKET)}"),
        ("pub", f"{API}.STREAM.PURGE.{subjects.kv_stream(subjects.RESULTS_BUCKET)}"),
        ("pub", "$SYS.REQ.SERVER.PING"),
        # Result events are the result bucket's own, republished once stored: nobody sends them.
        ("pub", subjects.task_result(me.name, "forged")),
        ("pub", subjects.task_result(OTHER_TENANT, "forged")),
    ]
    if me.role != "operator":  # the operator stands in for agents in load tests
        cells += [
            ("pub", subjects.swarm_heartbeat(OTHER_AGENT)),
            ("pub", subjects.swarm_register(OTHER_AGENT)),
            ("pub", subjects.swarm_leave(OTHER_AGENT)),
        ]
    if me.role != "router":
        cells += [
            ("pub", f"$KV.{subjects.RESULTS_BUCKET}.forged"),
            ("pub", subjects.agent_batch(agent)),
            ("pub", subjects.consumer_next(subjects.TASK_STREAM, subjects.ROUTER_CONSUMER)),
            ("pub", subjects.consumer_next(subjects.TASK_STREAM, subjects.lane_consumer("high"))),
            ("pub", f"$JS.ACK.{subjects.TASK_STREAM}.x.1.1.1.1.1"),
            ("sub", subjects.TASK_STATUS_ALL),
            # The task API of every tenant but its own (only routers speak for all of them)
            ("pub", subjects.task_submit(OTHER_TENANT, "echo")),
            ("pub", subjects.task_status(OTHER_TENANT)),
            ("pub", subjects.task_cancel(OTHER_TENANT)),
            ("sub", subjects.tenant_results(OTHER_TENANT)),
            ("sub", subjects.tenant_progress(OTHER_TENANT)),
            ("sub", subjects.TASK_RESULT_ALL),
            ("sub", subjects.TASK_PROGRESS_ALL),
            ("pub", f"{subjects.tenant_result_gets(OTHER_TENANT)[:-1]}t1"),
            # A direct get naming its key in the body, or a message get, could read any key.
            ("pub", f"{API}.DIRECT.GET.{subjects.kv_stream(subjects.RESULTS_BUCKET)}"),
            ("pub", f"{API}.STREAM.MSG.GET.{subjects.kv_stream(subjects.RESULTS_BUCKET)}"),
        ]
    if me.role != "router":  # swarm jobs run as tasks: the coordinator dispatches nothing
        cells += [("pub", subjects.agent_run(agent))]
    if me.role != "coordinator":
        cells += [
            # Only the coordinator records job results and speaks for jobs.
            ("pub", f"$KV.{subjects.JOBS_BUCKET}.{subjects.job_key('result', me.name, 'forged')}"),
            ("pub", subjects.swarm_job_event(me.name, "forged")),
            ("pub", subjects.swarm_job_event(OTHER_TENANT, "forged")),
            ("pub", subjects.SWARM_JOB_ADOPT),
            ("sub", subjects.SWARM_JOB_SUBMIT_ALL),
            ("sub", subjects.SWARM_JOB_STATUS_ALL),
            ("sub", subjects.SWARM_JOB_CANCEL_ALL),
            # The swarm job API of every tenant but its own
            ("pub", subjects.job_submit(OTHER_TENANT)),
            ("pub", subjects.job_status(OTHER_TENANT)),
            ("pub", subjects.job_cancel(OTHER_TENANT)),
            ("sub", subjects.tenant_job_events(OTHER_TENANT)),
            ("sub", subjects.swarm_job_event(OTHER_TENANT, "j1")),
            ("sub", subjects.SWARM_JOB_EVENT_ALL),
            # Nor any other tenant's keys of the jobs bucket, nor those of before tenants (the
            # open-mode tenant's), nor a listing or a read that names its key in the body
            *[("pub", _job_get(subjects.job_key(kind, OTHER_TENANT, "j1"))) for kind in KINDS],
            ("pub", _job_get(subjects.legacy_job_key("result", "j1"))),
            ("pub", f"{API}.DIRECT.GET.{JOBS_STREAM}"),
            ("pub", f"{API}.STREAM.MSG.GET.{JOBS_STREAM}"),
            ("pub", f"{API}.STREAM.INFO.{JOBS_STREAM}"),
            ("pub", f"{API}.CONSUMER.CREATE.{JOBS_STREAM}"),
            ("pub", f"{API}.CONSUMER.CREATE.{JOBS_STREAM}.watch.>"),
            ("pub", f"$KV.{subjects.AGENTS_BUCKET}.forged"),
            ("pub", f"$KV.{subjects.LEADER_BUCKET}.{subjects.LEADER_KEY}"),
            ("pub", subjects.swarm_event("agent_up")),
            ("sub", subjects.SWARM_HEARTBEAT_ALL),
            ("sub", subjects.SWARM_REGISTER_ALL),
        ]
    if me.role != "cache":
        cells += [("pub", subjects.cache_inval("memo")), ("sub", subjects.CACHE_SET)]
    if me.role != "worker":
        cells += [("sub", subjects.CACHE_INVAL_ALL), ("pub", subjects.CACHE_MEMO_SET)]
    if me.role != "router":
        cells += [
            ("pub", subjects.agent_cancel(agent)),
            ("pub", subjects.task_cancelled(OTHER_TENANT, "someone-elses")),
            ("sub", subjects.TASK_CANCEL_ALL),
        ]
    if me.role != "operator":
        cells += [
            ("pub", f"{API}.STREAM.MSG.DELETE.{subjects.DEAD_STREAM}"),
            ("pub", f"{API}.STREAM.MSG.GET.{subjects.DEAD_STREAM}"),
        ]
    if me.role in ("worker", "cache"):
        cells += [
            ("pub", subjects.task_submit(me.name, "echo")),
            ("sub", subjects.tenant_results(me.name)),
            ("pub", subjects.job_submit(me.name)),
            ("sub", subjects.tenant_job_events(me.name)),
        ]
    if me.role in ("client", "operator", "worker", "cache"):
        # Which task ids exist is no one's business but the hub's: no listing of result keys.
        cells += [("pub", f"{API}.STREAM.INFO.{subjects.kv_stream(subjects.RESULTS_BUCKET)}")]
    if me.role in ("client", "worker", "cache"):
        # Nor which tenants have tasks waiting (the task stream's per-subject counts).
        cells += [("pub", f"{API}.STREAM.INFO.{subjects.TASK_STREAM}")]
    return cells


async def _try(nc: nats.NATS, kind: str, subject: str) -> None:
    if kind == "sub":
        await nc.subscribe(subject)
    else:
        await nc.publish(subject, b"{}", reply=f"{nc._inbox_prefix.decode()}.x")
    await nc.flush()


async def test_every_role_is_refused_what_its_job_does_not_need(
    secured: tuple[NatsServer, Credentials], provisioned: None
) -> None:
    server, creds = secured
    admin_errors: list[str] = []
    router = await _connect(with_user(server.url, creds.user("router")), admin_errors)
    js = router.jetstream()
    before = {name: (await js.stream_info(name)).state.messages for name in _streams()}
    checked = 0
    failures: list[str] = []
    for me in creds.users:
        errors: list[str] = []
        nc = await _connect(with_user(server.url, me), errors)
        try:
            for kind, subject in _denied_everywhere(me):
                errors.clear()
                await _try(nc, kind, subject)
                await asyncio.sleep(0.02)
                word = "subscription" if kind == "sub" else "publish"
                if not any(f"permissions violation for {word}" in e for e in errors):
                    failures.append(f"{me.name} ({me.role}) may {kind} {subject}")
                checked += 1
        finally:
            await nc.close()
    after = {name: (await js.stream_info(name)).state.messages for name in _streams()}
    await router.close()
    print(f"deny matrix: {checked} cells over {len(creds.users)} users")
    assert not failures, "\n".join(failures)
    assert after == before, "a refused publish landed in a stream"


async def test_each_role_still_may_do_its_job(
    secured: tuple[NatsServer, Credentials], provisioned: None
) -> None:
    server, creds = secured

    def allowed(me: User) -> list[tuple[str, str]]:
        own = [
            ("pub", subjects.task_submit(me.name, "echo")),
            ("pub", subjects.task_status(me.name)),
            ("pub", subjects.task_cancel(me.name)),
            ("sub", subjects.tenant_results(me.name)),
            ("sub", subjects.tenant_progress(me.name)),
            ("pub", f"{subjects.tenant_result_gets(me.name)[:-1]}t1"),
        ]
        own_jobs = [
            ("pub", subjects.job_submit(me.name)),
            ("pub", subjects.job_status(me.name)),
            ("pub", subjects.job_cancel(me.name)),
            ("sub", subjects.tenant_job_events(me.name)),
            ("sub", subjects.swarm_job_event(me.name, "j1")),
            *[("pub", _job_get(subjects.job_key(kind, me.name, "j1"))) for kind in KINDS],
        ]
        return {
            "client": [*own, *own_jobs],
            "operator": [*own, *own_jobs, ("pub", f"{API}.STREAM.MSG.GET.{subjects.DEAD_STREAM}")],
            "router": [
                ("pub", f"$KV.{subjects.RESULTS_BUCKET}.t1"),
                ("sub", subjects.TASK_STATUS_ALL),
                ("sub", subjects.TASK_CANCEL_ALL),
                (
                    "pub",
                    subjects.consumer_next(subjects.TASK_STREAM, subjects.lane_consumer("low")),
                ),
                ("pub", subjects.task_submit(OTHER_TENANT, "echo", "critical")),
            ],
            "coordinator": [
                ("sub", subjects.SWARM_HEARTBEAT_ALL),
                *own,
                (
                    "pub",
                    f"$KV.{subjects.JOBS_BUCKET}.{subjects.job_key('result', OTHER_TENANT, 'j1')}",
                ),
                ("pub", subjects.swarm_job_event(OTHER_TENANT, "j1")),
                ("sub", subjects.job_submit(OTHER_TENANT)),
            ],
            "cache": [("pub", subjects.cache_inval("memo")), ("sub", subjects.CACHE_SET)],
        }[me.role]

    worker = creds.user("worker")
    assert worker.agent_id
    allowed_worker = [
        ("sub", subjects.agent_batch(worker.agent_id)),
        ("pub", subjects.swarm_heartbeat(worker.agent_id)),
        ("pub", subjects.swarm_register(worker.agent_id)),
        ("pub", subjects.swarm_leave(worker.agent_id)),
    ]
    for me in creds.users:
        cells = allowed_worker if me.role == "worker" else allowed(me)
        errors: list[str] = []
        nc = await _connect(with_user(server.url, me), errors)
        for kind, subject in cells:
            await _try(nc, kind, subject)
        await asyncio.sleep(0.05)
        await nc.close()
        assert not [e for e in errors if "permissions violation" in e], (me.role, errors)


@pytest.mark.parametrize("password", ["wrong", ""])
async def test_wrong_missing_or_empty_credentials_are_refused(
    secured: tuple[NatsServer, Credentials], password: str
) -> None:
    server, creds = secured
    client = creds.user("client")
    for url in (
        server.url,
        with_user(server.url, User(client.name, client.role, password)),
    ):
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)


def test_credentials_file_is_private(secured: tuple[NatsServer, Credentials]) -> None:
    server, _ = secured
    path = Path(server.data_dir).parent / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    config = Path(server.data_dir) / f"{server.name}.conf"
    assert config.stat().st_mode & 0o777 == 0o600


def _streams() -> list[str]:
    return [
        subjects.TASK_STREAM,
        subjects.DEAD_STREAM,
        subjects.kv_stream(subjects.RESULTS_BUCKET),
        subjects.kv_stream(subjects.AGENTS_BUCKET),
    ]


async def test_a_result_is_announced_once_by_the_store_and_a_refused_write_never(
    secured: tuple[NatsServer, Credentials], provisioned: None
) -> None:
    server, creds = secured
    router = await _connect(with_user(server.url, creds.user("router")), [])
    listener = await _connect(with_user(server.url, creds.user("client")), [])
    heard: list[bytes] = []
    got = asyncio.Event()

    async def on_event(msg: Msg) -> None:
        heard.append(msg.data)
        got.set()

    try:
        for key in ("announce-once", "announce-after"):
            await listener.subscribe(subjects.task_result("client", key), cb=on_event)
        await listener.flush()
        kv = await router.jetstream().key_value(subjects.RESULTS_BUCKET)
        # Given a result stored create-once by the router (which may not send result events)
        await kv.create(subjects.result_key("client", "announce-once"), b"first")
        await asyncio.wait_for(got.wait(), 10)
        # When a second writer tries to replace it, and is refused
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.create(subjects.result_key("client", "announce-once"), b"second")
        # Then the store announced only what it stored: by the time a later key's event comes
        # (the server sends in order), nothing was heard of the refused write
        got.clear()
        await kv.put(subjects.result_key("client", "announce-after"), b"later")
        await asyncio.wait_for(got.wait(), 10)
        assert heard == [b"first", b"later"]
    finally:
        await router.close()
        await listener.close()
