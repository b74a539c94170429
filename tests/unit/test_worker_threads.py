"""Each agent-worker runs sync capabilities on threads of its own, whoever shares its loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from swarmhub.agent_worker.service import AgentWorker
from swarmhub.config import WorkerSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import RunReply, RunRequest, Task
from tests.apps import sample


def _agent(agent_id: str) -> AgentWorker:
    return AgentWorker(
        WorkerSettings(agent_id=agent_id, concurrency=2), registry=sample.app.registry
    )


async def _upper(agent: AgentWorker) -> RunReply:
    task = Task(capability="upper", payload={"text": agent.agent_id})
    return await agent.run_task(RunRequest(task=task, attempt=1))


async def test_two_agents_on_one_loop_each_run_sync_capabilities_on_their_own_threads() -> None:
    # Given two agents on this one event loop, both offering the sync capability `upper`
    first, second = _agent("pool-a"), _agent("pool-b")
    # When each runs several tasks of it, all at once
    replies = await asyncio.gather(*(_upper(a) for a in (first, second, first, second)))
    # Then every task ran on a thread of its own agent's pool, none on the loop's default one
    threads = [(r.output["text"], r.output["thread"]) for r in replies]
    assert {text for text, _ in threads} == {"POOL-A", "POOL-B"}
    for text, thread in threads:
        assert thread.startswith(f"capability-{text.lower()}_"), (text, thread)
    default = await asyncio.get_running_loop().run_in_executor(
        None, lambda: threading.current_thread().name
    )
    assert not default.startswith("capability")
    for agent in (first, second):
        await agent.runners.close()


async def test_an_agents_threads_stop_with_it_and_only_its_own() -> None:
    # Given two agents on one loop
    first, second = _agent("stop-a"), _agent("stop-b")
    # When the first one's runners are closed (its teardown does that)
    await first.runners.close()
    # Then its sync capabilities can no longer start, while the other agent's still run
    with pytest.raises(ServiceError, match="cannot schedule new futures") as info:
        await _upper(first)
    assert info.value.code is ErrorCode.HANDLER_ERROR
    assert (await _upper(second)).output["text"] == "STOP-B"
    await second.runners.close()
