"""Tenants: the NATS user is the submitter, and nobody forges, reads or stalls another's work.

A real nats-server with the embedded cluster's users (two client users, `client` and
`client-2`, are two tenants) and every service as its own process. Tasks and swarm jobs alike. A
hub from before tenants is taken over without losing a task or a swarm job.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.js.api import KeyValueConfig
from nats.js.errors import KeyNotFoundError

from swarmhub import subjects
from swarmhub.bus import HDR_MSG_ID
from swarmhub.client import ResultCollector, SwarmClient
from swarmhub.codec import encode, pack
from swarmhub.embedded import ClusterConfig, LocalCluster, NatsServer, free_port, free_port_block
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.roles import inbox_for
from swarmhub.schemas import (
    JobProgress,
    JobRecord,
    JobRequest,
    JobStatusReply,
    ResultStatus,
    StatusReply,
    StatusRequest,
    SwarmJob,
    SwarmJobResult,
    Task,
)
from tests.conftest import (
    cluster_running,
    hub_taking_over,
    lane_consumer_filters,
    old_hub,
    wait_for_agents,
    wait_until,
)

ROUTER_SLOTS = 4
TENANT_SHARE = 0.5  # a tenant may hold 2 of the router's 4 slots while another waits
FLOOD = 150
FLOOD_MS = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Its own server with users (two tenants) and a router of few slots."""
    config = ClusterConfig(
        data_dir=tmp_path_factory.mktemp("tenants"),
        port=free_port(),
        workers=1,
        worker_concurrency=16,
        clients=2,
        metrics_port=free_port_block(8),  # nats-server's monitoring, then one per service
        extra_env={
            "SWARMHUB_ROUTER_CONCURRENCY": str(ROUTER_SLOTS),
            "SWARMHUB_TENANT_SHARE": str(TENANT_SHARE),
        },
    )
    with cluster_running(config) as hub:
        asyncio.run(wait_for_agents(hub.url, 1))
        yield hub


async def _tenant(cluster: LocalCluster, index: int) -> SwarmClient:
    """A client logged in as the cluster's `index`-th client user: a tenant of its own."""
    return await SwarmClient.connect(cluster.url_as("client", index))


@pytest.fixture
async def ann(cluster: LocalCluster) -> AsyncIterator[SwarmClient]:
    """Tenant `client`."""
    async with await _tenant(cluster, 0) as client:
        yield client


@pytest.fixture
async def bob(cluster: LocalCluster) -> AsyncIterator[SwarmClient]:
    """Tenant `client-2`."""
    async with await _tenant(cluster, 1) as client:
        yield client


async def _refused(url: str, kind: str, subject: str) -> bool:
    """Whether the server refuses `url`'s user to subscribe to or publish on `subject`."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    nc = await nats.connect(
        url, error_cb=on_error, inbox_prefix=inbox_for(url), allow_reconnect=False
    )
    try:
        if kind == "sub":
            await nc.subscribe(subject)
        else:
            await nc.publish(subject, b"", reply=f"{inbox_for(url)}.x")
        await nc.flush()
        word = "subscription" if kind == "sub" else "publish"

        async def told() -> bool:
            await nc.flush()
            return any(f"permissions violation for {word}" in e for e in errors)

        try:
            await wait_until(told, 5, f"the server to refuse {kind} {subject}")
        except pytest.fail.Exception:
            return False
        return True
    finally:
        await nc.close()


async def test_a_tenant_can_neither_read_nor_hear_anothers_result(
    cluster: LocalCluster, ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given a task of ann's with its result stored
    result = await ann.run("echo", {"secret": "ann's"}, timeout=30)
    assert ann.tenant == "client" and bob.tenant == "client-2"
    bob_url = cluster.url_as("client", 1)
    key = subjects.result_key(ann.tenant, result.task_id)
    stream = subjects.kv_stream(subjects.RESULTS_BUCKET)
    # Then bob may not direct-get ann's key, by subject or by a body naming it, nor message-get it
    for subject in (
        f"{subjects.JS_API_PREFIX}.DIRECT.GET.{stream}.$KV.{subjects.RESULTS_BUCKET}.{key}",
        f"{subjects.JS_API_PREFIX}.DIRECT.GET.{stream}",
        f"{subjects.JS_API_PREFIX}.STREAM.MSG.GET.{stream}",
        f"{subjects.JS_API_PREFIX}.STREAM.INFO.{stream}",  # would list every key
    ):
        assert await _refused(bob_url, "pub", subject), subject
    # Nor hear ann's result or progress events, nor ask the routers about ann's tasks
    for kind, subject in (
        ("sub", subjects.task_result(ann.tenant, result.task_id)),
        ("sub", subjects.tenant_results(ann.tenant)),
        ("sub", subjects.TASK_RESULT_ALL),
        ("sub", subjects.task_progress(ann.tenant, result.task_id)),
        ("pub", subjects.task_status(ann.tenant)),
        ("pub", subjects.task_cancel(ann.tenant)),
        ("pub", subjects.task_submit(ann.tenant, "echo")),
    ):
        assert await _refused(bob_url, kind, subject), (kind, subject)
    # And the same id read through bob's own client is bob's own (none), not ann's
    assert await bob.result(result.task_id) is None
    # And a status request on bob's own subject that names ann is refused
    with pytest.raises(ServiceError, match="subject names"):
        await bob.bus.request(
            subjects.task_status(bob.tenant),
            StatusRequest(task_id=result.task_id, tenant=ann.tenant),
            StatusReply,
        )
    mine = await ann.bus.request(
        subjects.task_status(ann.tenant), StatusRequest(task_id=result.task_id), StatusReply
    )
    assert mine.state == "done" and mine.result == result


async def test_the_same_id_from_two_tenants_is_two_tasks(
    ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given ann's running task
    task = Task(capability="sleep", payload={"ms": 400})
    await ann.submit(task)
    # When bob cancels that id, and then submits a task of his own under it
    cancelled = await bob.cancel(task.id)
    assert cancelled.state == "cancelled"
    theirs = Task(id=task.id, capability="echo", payload={"by": "bob"})
    await bob.submit(theirs)  # not a duplicate of ann's: dedupe is per tenant
    # Then ann's task runs to its own result, untouched
    mine = await ann.wait(task.id, timeout=30)
    assert mine.status is ResultStatus.SUCCEEDED and mine.output == {"slept_ms": 400.0}
    # And bob's id holds bob's own outcome: his cancel came first, so his task never ran
    assert (await bob.wait(task.id, timeout=30, check=False)).status is ResultStatus.CANCELLED
    # And a fresh id submitted by both gets both their outputs, each under its own tenant
    both = Task(capability="echo", payload={"by": "ann"})
    await ann.submit(both)
    await bob.submit(both.model_copy(update={"payload": {"by": "bob"}}))
    assert (await ann.wait(both.id, timeout=30)).output == {"by": "ann"}
    assert (await bob.wait(both.id, timeout=30)).output == {"by": "bob"}


async def test_a_tenant_that_learned_anothers_task_id_cannot_make_its_submit_a_duplicate(
    ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given bob knows the id of a task ann is about to submit, and publishes first, on his own
    # subject, under ann's dedupe id as it looks untagged and with a guessed tag
    task = Task(capability="echo", payload={"by": "ann"})
    for forged in (subjects.result_key(ann.tenant, task.id), f"{ann.tenant}.{task.id}.0"):
        stored = await bob.bus.js.publish(
            subjects.task_submit(bob.tenant, "echo"),
            encode(Task(capability="echo", payload={"by": "bob"})),
            headers={HDR_MSG_ID: forged},
        )
        assert not stored.duplicate
    # When ann submits it
    await ann.submit(task)
    # Then it is not taken for a duplicate: it runs, with ann's own payload
    mine = await ann.wait(task.id, timeout=30)
    assert mine.status is ResultStatus.SUCCEEDED and mine.output == {"by": "ann"}


async def test_a_cancel_stops_only_the_askers_attempt_of_a_shared_id(
    ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given ann's and bob's tasks of one id running at once, on the cluster's one agent
    running: dict[str, asyncio.Event] = {"ann": asyncio.Event(), "bob": asyncio.Event()}
    task = Task(capability="sleep", payload={"ms": 3000})
    waits = [
        asyncio.create_task(
            client.run(
                task,
                timeout=30,
                check=False,
                on_progress=lambda p, name=name: (
                    running[name].set() if p.state == "running" else None
                ),
            )
        )
        for name, client in (("ann", ann), ("bob", bob))
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in running.values())), 30)
    # When bob cancels that id
    assert (await bob.cancel(task.id)).state == "cancelled"
    mine, theirs = await asyncio.gather(*waits)
    # Then bob's attempt ended cancelled, and ann's ran to its end on the same agent
    assert theirs.status is ResultStatus.CANCELLED
    assert mine.status is ResultStatus.SUCCEEDED and mine.output == {"slept_ms": 3000.0}
    assert mine.attempts == 1


def _exported(url: str, series: str) -> float | None:
    """The value of one series (name and labels as exposed) at a /metrics URL, if it is there."""
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
    return None


async def test_one_tenant_flooding_leaves_room_for_another(
    cluster: LocalCluster, ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given ann flooding the router (more tasks than its slots, each taking a while)
    flood = [Task(capability="sleep", payload={"ms": FLOOD_MS}) for _ in range(FLOOD)]
    flooded = await ResultCollector(ann).start()
    try:
        await ann.submit_many(flood)

        async def ann_running() -> bool:
            return len(flooded.results) >= 1

        await wait_until(ann_running, 30, "ann's first result")
        # When bob submits a few tasks behind ann's backlog
        mine = [Task(capability="echo", payload={"n": n}) for n in range(3)]
        bob_results = await asyncio.wait_for(
            asyncio.gather(*(bob.run(task, timeout=60) for task in mine)), timeout=90
        )
        ann_done_then = len(flooded.results)
        (router,) = await ann.discover("STATS", "task-router")
        handbacks = router["data"]["tenants"]["handbacks"]
        print(f"bob's {len(mine)} tasks done after {ann_done_then} of ann's {FLOOD}; {handbacks=}")
        assert handbacks > 0  # ann's tasks over her share were handed back, as the stats tell
        # And Prometheus sees them too (read after the stats: the flood goes on meanwhile)
        (router_metrics,) = cluster.scrape_targets["swarmhub-router"]
        scraped = await asyncio.to_thread(
            _exported, f"http://{router_metrics}/metrics", "swarmhub_tenant_handbacks_total"
        )
        assert scraped is not None and scraped >= handbacks, scraped
        # Then bob's all succeeded while most of ann's flood still waited its turn
        assert {r.status for r in bob_results} == {ResultStatus.SUCCEEDED}
        assert ann_done_then < FLOOD // 2, f"bob waited for {ann_done_then} of ann's tasks"
        # And ann's flood is not lost nor dead-lettered for waiting: every task succeeds
        found = await flooded.wait_all([t.id for t in flood], timeout=120)
    finally:
        await flooded.stop()
    assert len(found) == FLOOD
    assert {r.status for r in found.values()} == {ResultStatus.SUCCEEDED}
    assert max(r.attempts for r in found.values()) == 1


async def test_a_swarm_jobs_sub_tasks_are_the_coordinators_own(
    ann: SwarmClient, bob: SwarmClient
) -> None:
    # When ann runs a map job on a secured hub (the coordinator submits, hears and reads its
    # sub-tasks as its own tenant, with its own permissions)
    inputs = [{"i": i} for i in range(4)]
    result = await ann.run_job(SwarmJob(capability="echo", inputs=inputs), timeout=60)
    # Then it succeeds, and its sub-tasks' results belong to neither client tenant
    assert result.status == "succeeded", result.error
    assert result.value == inputs
    sub_task = subjects.job_sub_task(ann.tenant, result.job_id, 0)
    assert await ann.result(sub_task) is None
    assert await bob.result(sub_task) is None


async def test_a_tenant_can_neither_read_nor_ask_about_anothers_swarm_job(
    cluster: LocalCluster, ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given ann's finished swarm job
    secret = [{"secret": "ann's"}]
    result = await ann.run_job(SwarmJob(capability="echo", inputs=secret), timeout=60)
    assert result.status == "succeeded" and result.value == secret
    # Then bob's client, asking by the same id, finds no job of his: neither in the store nor
    # from the coordinator
    assert await bob.job_result(result.job_id) is None
    theirs = await bob.job_status(result.job_id)
    assert theirs.progress.state == "unknown" and theirs.result is None
    # And bob may not direct-get ann's keys of the jobs bucket, nor list or read it otherwise
    bob_url = cluster.url_as("client", 1)
    stream = subjects.kv_stream(subjects.JOBS_BUCKET)
    api = subjects.JS_API_PREFIX
    for subject in (
        *(
            f"{api}.DIRECT.GET.{stream}.$KV.{subjects.JOBS_BUCKET}."
            f"{subjects.job_key(kind, ann.tenant, result.job_id)}"
            for kind in subjects.JOB_KINDS
        ),
        f"{api}.DIRECT.GET.{stream}",
        f"{api}.STREAM.MSG.GET.{stream}",
        f"{api}.STREAM.INFO.{stream}",  # would list every key
        f"{api}.CONSUMER.CREATE.{stream}",  # a watch would read every key
        subjects.job_status(ann.tenant),
        subjects.job_submit(ann.tenant),
    ):
        assert await _refused(bob_url, "pub", subject), subject
    # And a status request on bob's own subject that names ann is refused
    with pytest.raises(ServiceError, match="subject names"):
        await bob.bus.request(
            subjects.job_status(bob.tenant),
            JobRequest(job_id=result.job_id, tenant=ann.tenant),
            JobStatusReply,
        )
    # While ann's own client reads it, as it did
    assert await ann.job_result(result.job_id) == result
    assert (await ann.job_status(result.job_id)).result == result


async def test_a_tenant_cannot_hear_anothers_swarm_job(
    cluster: LocalCluster, ann: SwarmClient
) -> None:
    bob_url = cluster.url_as("client", 1)
    # bob may hear no job's events but his own: not every job's, not ann's
    assert await _refused(bob_url, "sub", subjects.SWARM_JOB_EVENT_ALL)
    assert await _refused(bob_url, "sub", subjects.tenant_job_events(ann.tenant))
    assert await _refused(bob_url, "sub", subjects.swarm_job_event(ann.tenant, "j1"))
    # while ann hears her own job's events (and a job of hers ends with its done event)
    heard: list[JobProgress] = []
    result = await ann.run_job(
        SwarmJob(capability="echo", inputs=[{"i": 1}]), timeout=60, on_progress=heard.append
    )
    assert heard and heard[-1].state == "done" and heard[-1].job_id == result.job_id


async def test_a_tenant_cannot_cancel_anothers_swarm_job(
    ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given ann's running swarm job
    job = SwarmJob(capability="sleep", inputs=[{"ms": 1500}, {"ms": 1500}])
    await ann.submit_job(job)
    # When bob cancels its id
    with pytest.raises(ServiceError) as refused:
        await bob.cancel_job(job.id)
    # Then he is told there is no such job of his, and ann's runs to its own end
    assert refused.value.code is ErrorCode.NOT_FOUND
    mine = await ann.wait_job(job.id, timeout=60)
    assert mine.status == "succeeded", mine.error
    assert mine.value == [{"slept_ms": 1500.0}] * 2


async def test_the_same_job_id_from_two_tenants_is_two_jobs(
    ann: SwarmClient, bob: SwarmClient
) -> None:
    # Given ann's job, and bob's of the same id with other inputs
    job = SwarmJob(capability="echo", inputs=[{"by": "ann", "i": i} for i in range(3)])
    theirs = job.model_copy(update={"inputs": [{"by": "bob"}]})
    # When both submit them
    accepted = await asyncio.gather(ann.submit_job(job), bob.submit_job(theirs))
    # Then each is a new job of its tenant, with its own sub-tasks and its own result
    assert [a.existing for a in accepted] == [False, False]
    assert [a.total for a in accepted] == [3, 1]
    mine, bobs = await asyncio.gather(
        ann.wait_job(job.id, timeout=60), bob.wait_job(job.id, timeout=60)
    )
    assert mine.status == bobs.status == "succeeded"
    assert mine.value == job.inputs
    assert bobs.value == [{"by": "bob"}]
    # And cancelling bob's, now finished, leaves both results as they were
    assert (await bob.cancel_job(job.id)).result == bobs
    assert await ann.job_result(job.id) == mine


async def test_the_cli_acts_as_the_user_it_is_told(cluster: LocalCluster, bob: SwarmClient) -> None:
    env = {**os.environ, "SWARMHUB_DATA_DIR": str(cluster.config.data_dir)}

    async def cli(*args: str) -> tuple[int | None, str]:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "swarmhub", *args, "--url", cluster.server_url),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode()

    # When the CLI submits a task as client-2 (bob), whose credentials it finds in the data folder
    code, out = await cli(
        "submit", "echo", "--payload", '{"by": "cli"}', "--wait", "--json", "--user", "client-2"
    )
    assert code == 0, out
    task_id = json.loads(out)["task_id"]
    # Then it is bob's task: his client reads it, the CLI as bob too, as the operator not
    stored = await bob.result(task_id)
    assert stored is not None and stored.output == {"by": "cli"}
    assert (await cli("result", task_id, "--user", "client-2"))[0] == 0
    assert (await cli("result", task_id))[0] == 3  # the operator's own id: no such result


async def test_a_hub_from_before_tenants_is_taken_over_without_losing_a_task(
    tmp_path: Path,
) -> None:
    # Given a hub of before tenants: its stream and lane consumers on the subjects without a
    # tenant token, a results bucket without direct get, and tasks stored in every lane
    old_filters = {lane: subjects.lane_filters(lane)[1] for lane in subjects.LANES}
    consumers = {subjects.lane_consumer(lane): old for lane, old in old_filters.items()}
    async with old_hub(tmp_path, consumers) as (server, js):
        await js.create_key_value(KeyValueConfig(bucket=subjects.RESULTS_BUCKET))
        old = [Task(capability="echo", payload={"lane": lane}) for lane in subjects.LANES * 3]
        for task in old:
            lane = str(task.payload["lane"])
            await js.publish(
                old_filters[lane].replace("*", task.capability),
                encode(task),
                headers={HDR_MSG_ID: task.id},
            )

        # When the hub of today starts on it (open mode: every old task is the tenant `_open`'s)
        async with hub_taking_over(server.url, tmp_path / "hub") as client:
            assert client.tenant == subjects.OPEN_TENANT
            # Then every old task gets its result, read as that tenant's
            collector = await ResultCollector(client).start()
            try:
                found = await collector.wait_all([t.id for t in old], timeout=60)
            finally:
                await collector.stop()
            assert len(found) == len(old)
            assert {r.status for r in found.values()} == {ResultStatus.SUCCEEDED}
            assert await client.result(old[0].id) == found[old[0].id]
        # And each lane's consumer takes its subjects and the old ones, and the results bucket
        # answers direct gets
        info = await js.stream_info(subjects.kv_stream(subjects.RESULTS_BUCKET))
        assert info.config.allow_direct
        assert await lane_consumer_filters(js) == {
            subjects.lane_consumer(lane): subjects.lane_filters(lane) for lane in subjects.LANES
        }


async def test_swarm_jobs_stored_before_tenants_are_the_open_tenants_after_an_upgrade(
    tmp_path: Path,
) -> None:
    # Given the jobs bucket a hub of before tenants left (no direct get; keys <kind>.<job id>):
    # a job accepted but not yet run, and a job that had finished
    server = NatsServer(tmp_path / "nats", name="old-jobs").start()
    try:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            kv = await js.create_key_value(KeyValueConfig(bucket=subjects.JOBS_BUCKET))
            inputs = [{"i": i} for i in range(3)]
            waiting = SwarmJob(capability="echo", inputs=inputs)
            record = JobRecord(job=waiting, accepted_at=time.time(), total=len(inputs))
            await kv.put(subjects.legacy_job_key("job", waiting.id), _as_before(record))
            done = SwarmJobResult(job_id="old-done", status="succeeded", value=[1], total=1)
            await kv.put(subjects.legacy_job_key("result", done.job_id), encode(done))

            # When the hub of today starts on it (open mode: the old jobs are `_open`'s)
            async with hub_taking_over(server.url, tmp_path / "hub") as client:
                assert client.tenant == subjects.OPEN_TENANT
                # Then the waiting job is resumed and ends with its result, which the open
                # tenant's client hears of and reads
                result = await client.wait_job(waiting.id, timeout=60)
                assert result.status == "succeeded", result.error
                assert result.value == inputs
                assert (await client.job_status(waiting.id)).result == result
                # And the finished job answers as it was, from the store and the coordinator
                assert await client.job_result(done.job_id) == done
                assert (await client.job_status(done.job_id)).result == done
                # And a finished old job cancelled again keeps its result
                assert (await client.cancel_job(done.job_id)).result == done

                # And the resumed job's record goes from its old key once it has ended
                async def record_gone() -> bool:
                    try:
                        await kv.get(subjects.legacy_job_key("job", waiting.id))
                    except KeyNotFoundError:
                        return True
                    return False

                await wait_until(record_gone, 30, "the old job's record to be deleted")
            # And the jobs bucket now answers direct gets (how a tenant reads its own keys)
            info = await js.stream_info(subjects.kv_stream(subjects.JOBS_BUCKET))
            assert info.config.allow_direct
        finally:
            await nc.close()
    finally:
        server.stop()


def _as_before(record: JobRecord) -> bytes:
    """A job record as a hub from before tenants encoded it (its job without a tenant)."""
    return pack(record.model_dump(mode="python", exclude={"job": {"tenant"}}))
