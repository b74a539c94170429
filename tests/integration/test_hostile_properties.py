"""Hostile bodies on every endpoint of the four running services: each request gets an answer,
a refusal is an error reply with a code (never an internal error, never the body echoed back),
and every service goes on serving."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NATS

from swarmhub import codec, subjects
from swarmhub.bus import HDR_ERROR, HDR_ERROR_CODE, HDR_ERROR_KIND, HDR_MSG_ID
from swarmhub.client import SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.errors import HTTP_STATUS, ErrorCode
from swarmhub.limits import MAX_ERROR_MESSAGE
from swarmhub.schemas import (
    AgentRegistration,
    CacheKey,
    CacheSet,
    CancelRequest,
    Empty,
    Heartbeat,
    JobRequest,
    LeaveRequest,
    Message,
    ResultStatus,
    RunBatch,
    RunRequest,
    StatusRequest,
    SwarmJob,
    Task,
)
from tests.conftest import services_on, wait_for_agents
from tests.wire_strategies import FAST, hostile_bytes, long_texts, near_valid

FAKE_AGENT = "hostile-agent"  # swarm subjects speak for this id, never for the real agent
REPLY_TIMEOUT = 5.0

HOSTILE = settings(
    FAST,
    max_examples=100,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one connection serves every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@dataclass(frozen=True)
class Target:
    """One endpoint: where it listens and what it decodes."""

    subject: str
    model: type[Message]


@pytest.fixture(scope="module")
def services(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with services_on(
        nats_url,
        tmp_path_factory.mktemp("hostile"),
        workers=1,
        worker_concurrency=4,
        extra_env={"SWARMHUB_NO_AGENT_WAIT": "1"},
    ) as cluster:
        yield cluster


@pytest.fixture
async def client(services: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(services.url, 1)
    async with await SwarmClient.connect(services.url) as c:
        yield c


@pytest.fixture
async def nc(client: SwarmClient, services: LocalCluster) -> AsyncIterator[NATS]:
    conn = await nats.connect(services.url)
    yield conn
    await conn.close()


@pytest.fixture
async def targets(client: SwarmClient) -> list[Target]:
    (agent,) = await client.agents()
    return [
        Target(subjects.CACHE_GET, CacheKey),
        Target(subjects.CACHE_SET, CacheSet),
        Target(subjects.CACHE_MEMO_SET, CacheSet),
        Target(subjects.CACHE_DEL, CacheKey),
        Target(subjects.CACHE_STATS, Empty),
        Target(subjects.task_status(client.tenant), StatusRequest),
        Target(subjects.task_cancel(client.tenant), CancelRequest),
        Target(subjects.swarm_register(FAKE_AGENT), AgentRegistration),
        Target(subjects.swarm_leave(FAKE_AGENT), LeaveRequest),
        Target(subjects.TEMPLATES["heartbeat"].format(agent_id=FAKE_AGENT), Heartbeat),
        Target(subjects.job_submit(client.tenant), SwarmJob),
        Target(subjects.job_status(client.tenant), JobRequest),
        Target(subjects.job_cancel(client.tenant), JobRequest),
        Target(subjects.agent_run(agent.agent_id), RunRequest),
        Target(subjects.agent_batch(agent.agent_id), RunBatch),
        Target(subjects.agent_cancel(agent.agent_id), CancelRequest),
    ]


async def check_answer(nc: NATS, target: Target, data: bytes, doc: Any = None) -> None:
    """One request; its answer is a success or an error reply with a code, never internal."""
    msg = await nc.request(target.subject, data, timeout=REPLY_TIMEOUT)
    headers = msg.headers or {}
    if HDR_ERROR_CODE not in headers:
        if msg.data:  # a success: a msgpack map (of the endpoint's reply model)
            assert isinstance(codec.unpack(msg.data), dict)
        return
    kind = headers.get(HDR_ERROR_KIND, "")
    assert kind in ErrorCode._value2member_map_, headers
    code = ErrorCode(kind)
    assert code is not ErrorCode.INTERNAL, f"{target}: {headers.get(HDR_ERROR)}"
    assert headers[HDR_ERROR_CODE] == str(HTTP_STATUS[code])
    assert len(headers.get(HDR_ERROR, "")) <= 512
    info = codec.unpack(msg.data)
    assert info["code"] == kind and 0 < len(info["message"]) <= MAX_ERROR_MESSAGE
    for text in long_texts(doc):
        assert text not in info["message"] and text not in headers.get(HDR_ERROR, "")


async def still_serving(client: SwarmClient) -> None:
    """Every service answers discovery, the agent is registered, and a task runs end to end."""
    for name in ("cache", "swarm-coordinator", "task-router"):
        assert await client.discover("PING", name, wait=0.5), f"{name} stopped answering"
    assert [a.agent_id for a in await client.agents() if a.agent_id != FAKE_AGENT]
    result = await client.run(Task(capability="echo", payload={"n": 1}), timeout=20, check=False)
    assert result.status is ResultStatus.SUCCEEDED and result.output == {"n": 1}


@HOSTILE
@given(data=st.data())
async def test_endpoints_answer_hostile_bytes_with_an_error_code(
    nc: NATS, targets: list[Target], data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(targets), label="endpoint")
    await check_answer(nc, target, data.draw(hostile_bytes(), label="body"))


@HOSTILE
@given(data=st.data())
async def test_endpoints_answer_near_valid_documents_with_an_error_code(
    nc: NATS, targets: list[Target], data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(targets), label="endpoint")
    doc = data.draw(near_valid(target.model), label="document")
    await check_answer(nc, target, codec.pack(doc), doc)


@settings(HOSTILE, max_examples=40)
@given(data=st.data())
async def test_the_router_takes_hostile_tasks_from_the_stream(
    client: SwarmClient, data: st.DataObject
) -> None:
    doc = data.draw(near_valid(Task) | hostile_bytes(), label="task")
    body = doc if isinstance(doc, bytes) else codec.pack(doc)
    ack = await client.bus.js.publish(
        subjects.task_submit(client.tenant, "echo"),
        body,
        headers={HDR_MSG_ID: f"hostile-{time.time_ns()}"},
    )
    assert ack.seq


async def test_every_service_still_serves_after_the_hostile_bodies(client: SwarmClient) -> None:
    # Runs after the property tests above (file order): nothing they sent stopped a service, and
    # a valid task queued behind the hostile ones still runs.
    await still_serving(client)
