"""The four services as real processes on a real nats-server: the whole task path."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgpack
import pytest

from swarmhub import codec, subjects
from swarmhub.bus import HDR_MSG_ID
from swarmhub.client import SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.errors import ErrorCode, Rejected, ServiceError
from swarmhub.schemas import (
    Ack,
    AgentRegistration,
    CacheInvalidation,
    CacheSet,
    DeadLetter,
    LeaveRequest,
    RegisterReply,
    ResultStatus,
    StatusReply,
    StatusRequest,
    SwarmJob,
    Task,
    TaskResult,
)
from tests.conftest import services_on, wait_for_agents, wait_until

OVERSIZE_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def services(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with services_on(
        nats_url,
        tmp_path_factory.mktemp("services"),
        workers=2,
        worker_concurrency=4,
        extra_env={
            "SWARMHUB_NO_AGENT_WAIT": "1.5",
            "SWARMHUB_RETRY_BACKOFF": "0.01",
            "SWARMHUB_MAX_BODY_BYTES": str(OVERSIZE_LIMIT),
        },
    ) as cluster:
        yield cluster


@pytest.fixture
async def client(services: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(services.url, 2)
    async with await SwarmClient.connect(services.url) as c:
        yield c


async def test_echo_task_returns_its_payload(client: SwarmClient) -> None:
    result = await client.run(
        Task(capability="echo", payload={"text": "hi"}), timeout=20, check=False
    )
    assert result.status is ResultStatus.SUCCEEDED
    assert result.output == {"text": "hi"}
    assert result.attempts == 1
    assert result.agent_id and result.agent_id.startswith("agent-")
    assert result.timings.total_ms >= result.timings.run_ms


async def test_duplicate_submission_is_deduplicated(client: SwarmClient) -> None:
    task = Task(capability="sleep", payload={"ms": 50})
    first = await client.bus.js_publish(
        subjects.task_submit(client.tenant, "sleep"), task, msg_id=task.id
    )
    second = await client.bus.js_publish(
        subjects.task_submit(client.tenant, "sleep"), task, msg_id=task.id
    )
    assert not first.duplicate
    assert second.duplicate
    result = await client.wait(task.id, timeout=20, check=False)
    assert result.status is ResultStatus.SUCCEEDED


async def _dead_letters(client: SwarmClient, task_id: str) -> list[DeadLetter]:
    sub = await client.bus.js.subscribe(subjects.TASK_DEAD_ALL, ordered_consumer=True)
    letters = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except Exception:
                break
            letter = codec.decode(msg.data, DeadLetter)
            if letter.task_id == task_id:
                letters.append(letter)
    finally:
        await sub.unsubscribe()
    return letters


async def test_malformed_task_is_dead_lettered_with_a_result(client: SwarmClient) -> None:
    task_id = "malformed-1"
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"),
        b"\xc1 definitely not msgpack",
        headers={HDR_MSG_ID: task_id},
    )
    result = await client.wait(task_id, timeout=20, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED
    assert result.error is not None and result.error.code is ErrorCode.INVALID_TASK
    assert "not valid msgpack" in result.error.message
    letters = await _dead_letters(client, task_id)
    assert len(letters) == 1
    assert letters[0].body == b"\xc1 definitely not msgpack"


async def test_a_task_of_no_valid_tenant_is_dead_lettered_not_retried(
    client: SwarmClient,
) -> None:
    # Given a task whose subject's tenant token no user could have (only open mode lets it in)
    task = Task(capability="echo", payload={})
    subject = subjects.task_submit(client.tenant, "echo").replace(client.tenant, "bad~tenant", 1)
    await client.bus.js.publish(subject, codec.encode(task), headers={HDR_MSG_ID: task.id})
    # Then it is dead-lettered at once, naming why, and leaves the stream (no result: no key)

    async def lettered() -> bool:
        letters = [letter for _, letter in await client.dead_letters() if letter.subject == subject]
        return bool(letters) and "tenant" in letters[0].error.message

    await wait_until(lettered, 20, "the dead letter of the task of no valid tenant")
    assert await client.result(task.id) is None


async def test_schema_invalid_task_names_the_field(client: SwarmClient) -> None:
    task_id = "invalid-field-1"
    body = msgpack.packb({"id": task_id, "capability": "echo", "max_attempts": 0})
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"), body, headers={HDR_MSG_ID: task_id}
    )
    result = await client.wait(task_id, timeout=20, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED
    assert result.error is not None and "field 'max_attempts'" in result.error.message
    # Bad input does not block good work.
    ok = await client.run(
        Task(capability="echo", payload={"after": "bad"}), timeout=20, check=False
    )
    assert ok.status is ResultStatus.SUCCEEDED


async def test_oversize_task_is_refused_by_the_client_and_dead_lettered_by_the_router(
    client: SwarmClient,
) -> None:
    big = Task(capability="echo", payload={"blob": "x" * (2 * 1024 * 1024)})
    with pytest.raises(ServiceError) as info:
        await client.submit(big)
    assert info.value.code is ErrorCode.TOO_LARGE
    # A body under NATS's limit but over the services' limit reaches the router, which says so.
    task_id = "oversize-1"
    body = msgpack.packb(
        {"id": task_id, "capability": "echo", "payload": {"blob": "y" * (OVERSIZE_LIMIT + 10)}}
    )
    await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"), body, headers={HDR_MSG_ID: task_id}
    )
    result = await client.wait(task_id, timeout=20, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED
    assert result.error is not None and "above the limit" in result.error.message
    (letter,) = await _dead_letters(client, task_id)
    assert letter.body_truncated and len(letter.body) <= OVERSIZE_LIMIT // 2


async def test_unknown_capability_ends_with_a_clear_error(client: SwarmClient) -> None:
    result = await client.run(Task(capability="translate"), timeout=20, check=False)
    assert result.status is ResultStatus.DEAD_LETTERED
    assert result.error is not None and result.error.code is ErrorCode.NO_AGENT
    assert "translate" in result.error.message


async def test_failures_retry_then_stop(client: SwarmClient) -> None:
    retried = await client.run(
        Task(capability="fail", payload={"message": "nope"}), timeout=20, check=False
    )
    assert retried.status is ResultStatus.FAILED
    assert retried.attempts == 3
    assert retried.error is not None and "nope" in retried.error.message
    final = await client.run(
        Task(capability="fail", payload={"retryable": False}), timeout=20, check=False
    )
    assert final.status is ResultStatus.FAILED
    assert final.attempts == 1


async def test_status_endpoint_reports_done_and_unknown(client: SwarmClient) -> None:
    result = await client.run(Task(capability="echo"), timeout=20, check=False)
    done = await client.bus.request(
        subjects.task_status(client.tenant), StatusRequest(task_id=result.task_id), StatusReply
    )
    assert done.state == "done" and done.result == result
    unknown = await client.bus.request(
        subjects.task_status(client.tenant), StatusRequest(task_id="never-submitted"), StatusReply
    )
    assert unknown.state == "unknown"


async def test_cache_get_set_delete_and_invalidation(client: SwarmClient) -> None:
    seen: list[CacheInvalidation] = []

    async def on_inval(msg: object) -> None:
        seen.append(codec.decode(msg.data, CacheInvalidation))  # type: ignore[attr-defined]

    sub = await client.bus.nc.subscribe(subjects.cache_inval("it"), cb=on_inval)
    assert await client.cache_get("k", namespace="it") == (False, None)
    await client.cache_set("k", {"v": 1}, namespace="it", ttl=30)
    assert await client.cache_get("k", namespace="it") == (True, {"v": 1})
    assert await client.cache_delete("k", namespace="it") is True
    assert await client.cache_get("k", namespace="it") == (False, None)
    await wait_until(lambda: _true(len(seen) == 2), 5, "two invalidations")
    await sub.unsubscribe()
    stats = await client.cache_stats()
    assert stats.hits >= 1 and stats.misses >= 2 and stats.sets >= 1


async def test_cache_rejects_oversize_values_by_name(client: SwarmClient) -> None:
    with pytest.raises(ServiceError) as info:
        await client.cache_set("big", "x" * (2 * 1024 * 1024))
    assert info.value.code is ErrorCode.TOO_LARGE


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "swarmhub"
    return subprocess.run(
        [str(exe), *args, "--url", url], capture_output=True, text=True, timeout=60, check=False
    )


async def test_cli_submit_result_status(services: LocalCluster, client: SwarmClient) -> None:
    out = _cli(services.url, "submit", "echo", "--payload", '{"text": "hi"}', "--wait")
    assert out.returncode == 0, out.stderr
    assert '{"text": "hi"}' in out.stdout
    out = _cli(services.url, "submit", "cpu", "--payload", '{"rounds": 1000}', "--wait", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "succeeded" and len(result["output"]["digest"]) == 64
    again = _cli(services.url, "result", result["task_id"], "--json")
    assert json.loads(again.stdout)["task_id"] == result["task_id"]
    status = _cli(services.url, "status")
    assert status.returncode == 0
    assert "agents (2 alive)" in status.stdout
    for name in ("task-router", "agent-worker", "swarm-coordinator", "cache"):
        assert name in status.stdout
    bad = _cli(services.url, "submit", "echo", "--payload", "[1]")
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    missing = _cli(services.url, "result", "no-such-task")
    assert missing.returncode == 3 and "no result stored" in missing.stderr


async def _true(value: bool) -> bool:
    return value


async def test_swarm_job_runs_on_every_live_agent_through_the_task_path(
    client: SwarmClient,
) -> None:
    result = await client.run_job(SwarmJob(capability="echo", payload={"n": 1}), timeout=30)
    assert result.status == "succeeded"
    assert sorted(result.agents) == sorted(a.agent_id for a in await client.agents())
    assert result.value == [{"n": 1}] * len(result.agents)
    # Each sub-task is an ordinary task with its own stored result
    assert (await client.result(subjects.job_sub_task(client.tenant, result.job_id, 0))) is not None
    mapped = await client.run_job(
        SwarmJob(capability="cpu", inputs=[{"rounds": 1, "seed": str(i)} for i in range(5)]),
        timeout=30,
    )
    assert mapped.status == "succeeded" and mapped.succeeded == 5
    with pytest.raises(ServiceError) as info:
        await client.run_job(SwarmJob(capability="nobody-has-this"))
    assert info.value.code is ErrorCode.NO_AGENT
    # An ensemble cannot ask for more distinct agents than are live, nor a job for more
    # sub-tasks than the configured bound (10,000 by default); both are refused by name
    with pytest.raises(ServiceError, match="distinct agents"):
        await client.run_job(SwarmJob(capability="echo", ensemble=3))
    with pytest.raises(ServiceError, match="SWARMHUB_JOB_MAX_FAN_OUT") as info:
        await client.run_job(SwarmJob(capability="echo", inputs=[{}] * 10_001))
    assert info.value.code is ErrorCode.BAD_REQUEST


async def test_dead_letters_can_be_listed_and_replayed(
    services: LocalCluster, client: SwarmClient
) -> None:
    # Given a task dead-lettered because nobody offered its capability
    task = Task(capability="echo-later", payload={"v": 2})
    dead = await client.run(task, timeout=20, check=False)
    assert dead.status is ResultStatus.DEAD_LETTERED
    listed = _cli(services.url, "dead", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [r for r in json.loads(listed.stdout) if r["task_id"] == task.id]
    assert len(rows) == 1 and rows[0]["error"]["code"] == "no_agent"
    # When it is replayed
    out = _cli(services.url, "dead", "replay", task.id)
    assert out.returncode == 0, out.stderr
    new_id = out.stdout.split()[-1]
    assert new_id == f"{task.id}-replay-{rows[0]['seq']}"
    # Then it runs again under the new id (and dead-letters again: still no agent), and the
    # replayed letter left the dead-letter stream while the original result stays as it was.
    again = await client.wait(new_id, timeout=20, check=False)
    assert again.status is ResultStatus.DEAD_LETTERED
    assert (await client.result(task.id)) == dead
    seqs = [seq for seq, letter in await client.dead_letters() if letter.task_id == task.id]
    assert rows[0]["seq"] not in seqs
    missing = _cli(services.url, "dead", "replay", "no-such-id")
    assert missing.returncode == 3


async def test_coordinator_repairs_a_registry_entry_lost_behind_its_back(
    client: SwarmClient,
) -> None:
    # Given two registered agents, when one entry vanishes from the registry bucket
    agents = await client.agents()
    kv = await client.bus.js.key_value(subjects.AGENTS_BUCKET)
    await kv.delete(agents[0].agent_id)

    # Then the leader coordinator puts the live agent back (routers would not see it otherwise)
    async def restored() -> bool:
        return agents[0].agent_id in {a.agent_id for a in await client.agents()}

    await wait_until(restored, 15, "the coordinator to restore the registry entry", interval=0.2)


async def test_wait_returns_the_stored_result_not_a_forged_event(client: SwarmClient) -> None:
    # Given a running task and a forged result event for it from someone other than a router
    task = Task(capability="sleep", payload={"ms": 300})
    await client.submit(task)
    forged = TaskResult(task_id=task.id, status=ResultStatus.SUCCEEDED, output="forged")
    waiting = asyncio.create_task(client.wait(task.id, timeout=20, check=False))
    await asyncio.sleep(0)  # let wait() subscribe before the forgery is sent
    await client.bus.nc.publish(subjects.task_result(client.tenant, task.id), codec.encode(forged))
    # When the wait ends, Then it holds the hub's stored result, not the forgery
    result = await waiting
    assert result.output == {"slept_ms": 300.0}


async def test_an_agent_cannot_register_or_leave_as_another(client: SwarmClient) -> None:
    # Given a registration whose body names another agent than its subject does
    claim = AgentRegistration(agent_id="agent-victim", capabilities=["echo"], capacity=1)
    # When it is sent, Then the coordinator refuses it (subjects are what permissions scope)
    with pytest.raises(ServiceError, match="speak only for") as info:
        await client.bus.request(subjects.swarm_register("agent-mallory"), claim, RegisterReply)
    assert info.value.code is ErrorCode.BAD_REQUEST
    with pytest.raises(ServiceError, match="speak only for"):
        await client.bus.request(
            subjects.swarm_leave("agent-mallory"), LeaveRequest(agent_id="agent-victim"), Ack
        )
    assert "agent-victim" not in {a.agent_id for a in await client.agents()}


async def test_clients_cannot_write_or_delete_memoized_outputs(client: SwarmClient) -> None:
    # A forged memo entry would come back to a victim as if its capability had returned it.
    with pytest.raises(Rejected, match="only by agent-workers"):
        await client.cache_set("forged-key", {"digest": "evil"}, namespace="memo")
    with pytest.raises(Rejected, match="only by agent-workers"):
        await client.cache_delete("any-key", namespace="memo")
    with pytest.raises(Rejected, match="writes only the 'memo' namespace"):
        await client.bus.request(
            subjects.CACHE_MEMO_SET, CacheSet(namespace="default", key="k", value=1), Ack
        )
