"""Conformance: a client that knows only docs/PROTOCOL.md drives a real, secured local hub.

The client code path is the walkthrough script printed in PROTOCOL.md, loaded from the document
itself: it uses nats-py, msgpack and the standard library only. `swarmhub` is imported here just to
start the hub (the fixture) and to wait until it is ready.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import nats
import pytest
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from swarmhub.embedded import ClusterConfig, LocalCluster, free_port
from tests.conftest import REPO, cluster_running, wait_for_agents
from tests.unit.test_wire_schemas import doc_block


def documented_fields(message: str) -> set[str]:
    """The field names docs/schemas gives for `message`."""
    return set(json.loads((REPO / f"docs/schemas/{message}.json").read_text())["properties"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A secure-by-default local hub: its own nats-server with per-role users, one worker."""
    data = tmp_path_factory.mktemp("conformance")
    with cluster_running(ClusterConfig(data_dir=data, port=free_port(), workers=1)) as local:
        yield local


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The walkthrough script exactly as PROTOCOL.md prints it, as a file."""
    code = doc_block("walkthrough", "python")
    imported = {
        name.split(".")[0]
        for node in ast.walk(ast.parse(code))
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert imported - sys.stdlib_module_names == {"msgpack", "nats"}, imported
    path = tmp_path_factory.mktemp("walkthrough") / "walkthrough.py"
    path.write_text(code + "\n")
    return path


@pytest.fixture(scope="module")
def wire(walkthrough: Path) -> ModuleType:
    """The walkthrough script loaded as a module: the protocol client of these tests."""
    spec = importlib.util.spec_from_file_location("protocol_walkthrough", walkthrough)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def hub(cluster: LocalCluster, wire: ModuleType) -> AsyncIterator[Any]:
    """A connection as the documented `client` user, once the hub has an agent and a router."""
    await wait_for_agents(cluster.url, 1)
    conn = await wire.connect(cluster.server_url, cluster.config.data_dir)
    assert conn.tenant == "client"
    try:
        yield conn
    finally:
        await conn.nc.drain()


async def rejected(wire: ModuleType, hub: Any, **fields: Any) -> dict[str, Any]:
    """Submit an echo task with `fields`; return its result, which must be a rejection."""
    result: dict[str, Any] = await wire.run(hub, wire.new_task("echo", {"x": 1}, **fields))
    assert result["status"] == "dead_lettered", result
    assert result["error"]["code"] == "invalid_task" and result["error"]["retryable"] is False
    assert result["error"]["message"].startswith("Rejected task: ")
    assert result["agent_id"] is None and result["attempts"] == 0
    return result


def test_the_walkthrough_script_runs_as_printed(cluster: LocalCluster, walkthrough: Path) -> None:
    # Given a running hub with credentials in its data folder
    asyncio.run(wait_for_agents(cluster.url, 1))
    env = {
        **os.environ,
        "SWARMHUB_NATS_URL": cluster.server_url,
        "SWARMHUB_DATA_DIR": str(cluster.config.data_dir),
    }
    # When the script from the document runs as a user would run it
    done = subprocess.run(
        [sys.executable, str(walkthrough)], env=env, capture_output=True, text=True, timeout=60
    )
    # Then it prints the succeeded result of its echo task
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["output"] == {"text": "hi"}


async def test_echo_result_event_equals_the_stored_result_and_submits_dedupe(
    wire: ModuleType, hub: Any
) -> None:
    # Given a subscription to the task's result event, made before submitting
    task = wire.new_task("echo", {"text": "hello", "n": [1, 2.5, None]})
    events = await hub.nc.subscribe(f"hub.task.result.client.{task['id']}")
    # When the task is submitted twice under the same Nats-Msg-Id
    ack = await wire.submit(hub, task)
    again = await wire.submit(hub, task)
    # Then JetStream stored it once, in HUB_TASKS
    assert ack["stream"] == "HUB_TASKS" and "duplicate" not in ack
    assert again["seq"] == ack["seq"] and again["duplicate"] is True
    # And the event carries the msgpack TaskResult, the same as the KV bucket stores
    event = await events.next_msg(timeout=30)
    await events.unsubscribe()
    assert (event.headers or {}).get("Content-Type") == "application/msgpack"
    result = msgpack.unpackb(event.data, raw=False)
    assert result == await wire.stored_result(hub, task["id"])
    # And it has every documented field, with the output of an echo
    assert set(result) == documented_fields("TaskResult")
    assert result["task_id"] == task["id"] and result["capability"] == "echo"
    assert result["status"] == "succeeded" and result["error"] is None
    assert result["output"] == task["payload"] and result["attempts"] == 1
    assert result["agent_id"] and result["cached"] is False
    assert 0 <= result["timings"]["run_ms"] <= result["timings"]["total_ms"]
    assert abs(result["finished_at"] - time.time()) < 60  # epoch seconds


async def test_status_answers_done_and_errors_carry_service_headers(
    wire: ModuleType, hub: Any
) -> None:
    nc: Client = hub.nc
    # Given a finished task
    task = wire.new_task("echo", {"k": "v"})
    await wire.run(hub, task)
    # When a router is asked for its status, then it answers done with the stored result
    status_subject = "hub.task.status.client"
    reply = await nc.request(status_subject, msgpack.packb({"task_id": task["id"]}), timeout=5)
    status = msgpack.unpackb(reply.data)
    assert status["state"] == "done" and status["result"]["output"] == {"k": "v"}
    # When the request is invalid, then the ADR-32 error headers and an ErrorInfo body come back
    reply = await nc.request(status_subject, msgpack.packb({"task_id": "bad id!"}), timeout=5)
    headers = reply.headers or {}
    error = msgpack.unpackb(reply.data)
    assert headers["Nats-Service-Error-Code"] == "400"
    assert headers["Swarmhub-Error"] == error["code"] == "bad_request"
    assert "task_id" in headers["Nats-Service-Error"] and error["retryable"] is False
    # And an unknown id is simply unknown
    reply = await nc.request(status_subject, msgpack.packb({"task_id": "never-seen"}), timeout=5)
    assert msgpack.unpackb(reply.data)["state"] == "unknown"
    # And a request naming another tenant than its subject does is refused, naming both
    other = msgpack.packb({"task_id": task["id"], "tenant": "someone-else"})
    reply = await nc.request(status_subject, other, timeout=5)
    assert (reply.headers or {})["Nats-Service-Error-Code"] == "400"
    assert "subject names 'client'" in msgpack.unpackb(reply.data)["message"]


@pytest.mark.parametrize("field", ["created_at", "deadline"])
async def test_a_timestamp_in_milliseconds_is_rejected_naming_the_unit(
    wire: ModuleType, hub: Any, field: str
) -> None:
    # When a task says when in milliseconds
    result = await rejected(wire, hub, **{field: (time.time() + 60) * 1000})
    # Then its result says which field, which unit it must be in, and what it looks like
    message = result["error"]["message"]
    assert f"field '{field}'" in message
    assert "must be seconds since the Unix epoch" in message and "milliseconds" in message


async def test_a_relative_deadline_is_rejected_naming_the_unit(wire: ModuleType, hub: Any) -> None:
    result = await rejected(wire, hub, deadline=60)
    assert "field 'deadline'" in result["error"]["message"]
    assert "seconds since the Unix epoch" in result["error"]["message"]


async def test_an_unknown_field_is_rejected_naming_the_field(wire: ModuleType, hub: Any) -> None:
    # When a task carries a field the protocol does not define (a near miss of `affinity`)
    result = await rejected(wire, hub, affinity_key="user-7")
    # Then the rejection names it
    assert "field 'affinity_key': Extra inputs are not permitted" in result["error"]["message"]


async def test_a_capability_other_than_the_subjects_is_rejected(wire: ModuleType, hub: Any) -> None:
    # Given an `echo` task published on the subject of another capability
    task = wire.new_task("echo", {})
    events = await hub.nc.subscribe(f"hub.task.result.client.{task['id']}")
    try:
        await hub.nc.request(
            "hub.task.submit.client.cpu.normal",
            msgpack.packb(task),
            timeout=5,
            headers={"Nats-Msg-Id": f"client.{task['id']}"},
        )
        result = await wire.wait_result(hub, events, task["id"])
    finally:
        await events.unsubscribe()
    # Then it is rejected, naming both
    assert result["status"] == "dead_lettered"
    assert (
        "does not match its subject 'hub.task.submit.client.cpu.normal'"
        in result["error"]["message"]
    )


async def test_a_user_may_submit_read_and_hear_only_as_itself(
    cluster: LocalCluster, wire: ModuleType, hub: Any
) -> None:
    # Given a finished task of the client user
    task = wire.new_task("echo", {"mine": True})
    await wire.run(hub, task)
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    # When the operator user (another tenant) tries to read, hear or submit as `client`
    users = json.loads((cluster.config.data_dir / "credentials.json").read_text())["users"]
    me = next(u for u in users if u["role"] == "operator")
    nc = await nats.connect(
        cluster.server_url,
        user=me["name"],
        password=me["password"],
        inbox_prefix="_INBOX.operator",
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        await nc.subscribe(f"hub.task.result.client.{task['id']}")
        await nc.flush()
        key = f"$KV.hub_results.client.{task['id']}"
        with pytest.raises(NatsTimeout):
            await nc.request(f"$JS.API.DIRECT.GET.KV_hub_results.{key}", b"", timeout=1)
        with pytest.raises(NatsTimeout):
            await nc.request("hub.task.submit.client.echo.normal", msgpack.packb(task), timeout=1)
    finally:
        await nc.close()
    # Then the server refused each, and the operator's own key of that id is empty
    assert sum("permissions violation" in e for e in errors) == 3, errors
    # And the same id read as the operator is the operator's own, which it never submitted
    operator = await wire.connect(cluster.server_url, cluster.config.data_dir, "operator")
    try:
        assert await wire.stored_result(operator, task["id"]) is None
    finally:
        await operator.nc.drain()


async def test_replies_reach_a_user_only_under_its_own_inbox_prefix(
    cluster: LocalCluster, hub: Any
) -> None:
    # Given the client user's credentials, as the credentials file holds them
    users = json.loads((cluster.config.data_dir / "credentials.json").read_text())["users"]
    me = next(u for u in users if u["role"] == "client")
    # When it connects with the default inbox prefix, then no reply can reach it
    plain = await nats.connect(cluster.server_url, user=me["name"], password=me["password"])
    status = "hub.task.status.client"
    try:
        with pytest.raises(NatsTimeout):
            await plain.request(status, msgpack.packb({"task_id": "x"}), timeout=1)
    finally:
        await plain.close()
    # While the same request under `_INBOX.client` is answered
    reply = await hub.nc.request(status, msgpack.packb({"task_id": "x"}), timeout=5)
    assert msgpack.unpackb(reply.data)["state"] == "unknown"


async def test_a_rejected_task_leaves_a_dead_letter_with_its_original_body(
    cluster: LocalCluster, wire: ModuleType, hub: Any
) -> None:
    # Given a task rejected at intake, for a capability of its own so its letter is easy to find
    capability = f"conformance-{time.monotonic_ns()}"
    task = wire.new_task(capability, {"x": 1}, created_at=time.time() * 1000)
    result = await wire.run(hub, task)
    assert result["status"] == "dead_lettered"
    # When an operator reads the last letter on that capability's dead-letter subject
    operator = await wire.connect(cluster.server_url, cluster.config.data_dir, "operator")
    try:
        reply = await operator.nc.request(
            "$JS.API.STREAM.MSG.GET.HUB_DEAD",
            json.dumps({"last_by_subj": f"hub.task.dead.{capability}"}).encode(),
            timeout=5,
        )
    finally:
        await operator.nc.drain()
    stored = json.loads(reply.data)["message"]
    letter = msgpack.unpackb(base64.b64decode(stored["data"]), raw=False)
    # Then it holds the documented fields, the same error as the result and the bytes sent
    assert set(letter) == documented_fields("DeadLetter")
    assert letter["task_id"] == task["id"] and letter["capability"] == capability
    assert letter["subject"] == f"hub.task.submit.client.{capability}.normal"
    assert letter["error"] == result["error"] and letter["attempts"] == 0
    assert letter["body"] == msgpack.packb(task, use_bin_type=True)
    assert letter["body_truncated"] is False
    assert letter["first_seen"] <= letter["dead_at"] < time.time() + 60
