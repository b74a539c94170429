"""Swarm jobs on the durable path, against real processes: shapes, reductions, limits, cancel."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from swarmhub import subjects
from swarmhub.client import SwarmClient
from swarmhub.embedded import LocalCluster
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import JobProgress, ResultStatus, SwarmJob, SwarmJobResult
from tests.conftest import REPO, services_on, wait_for_agents, wait_until

WORKERS = 3
SOAK = bool(os.environ.get("SWARMHUB_SOAK"))


@pytest.fixture(scope="module")
def cluster(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with services_on(
        nats_url,
        tmp_path_factory.mktemp("jobs"),
        workers=WORKERS,
        worker_concurrency=8,
        app="tests.apps.swarm",
        app_dir=REPO,
        extra_env={"SWARMHUB_RETRY_BACKOFF": "0.01", "SWARMHUB_JOB_MAX_INPUT_BYTES": "4096"},
    ) as local:
        yield local


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[SwarmClient]:
    await wait_for_agents(cluster.url, WORKERS, timeout=60)
    async with await SwarmClient.connect(cluster.url) as c:
        yield c


def _sub_task(client: SwarmClient, job_id: str, n: int) -> str:
    """Task id of sub-task `n` of one of the client's jobs (run as the open-mode coordinator's)."""
    return subjects.job_sub_task(client.tenant, job_id, n)


def liar_file(tmp_path: Path) -> str:
    """A claim file: the first agent to run `answer` with it lies from then on."""
    return str(tmp_path / "liar")


async def test_map_gathers_every_output_in_input_order(client: SwarmClient) -> None:
    # Given a map of 50 inputs over one capability
    inputs = [{"i": i} for i in range(50)]
    seen: list[JobProgress] = []
    # When it runs
    result = await client.run_job(
        SwarmJob(capability="echo", inputs=inputs), timeout=60, on_progress=seen.append
    )
    # Then every output comes back in input order, each sub-task with its outcome
    assert result.status == "succeeded", result.error
    assert result.value == inputs
    assert [o.n for o in result.outcomes] == list(range(50))
    assert {o.status for o in result.outcomes} == {ResultStatus.SUCCEEDED}
    assert result.total == result.succeeded == 50
    # and sub-tasks are ordinary tasks with deterministic ids and stored results
    stored = await client.result(subjects.job_sub_task(client.tenant, result.job_id, 7))
    assert stored is not None and stored.output == {"i": 7}
    assert seen and seen[-1].state == "done" and seen[-1].status == "succeeded"
    status = await client.job_status(result.job_id)
    assert status.progress.state == "done" and status.result == result


async def test_the_done_event_carries_the_stored_result_so_no_read_is_needed(
    client: SwarmClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a client that counts its reads of the job store that found the result
    found = 0
    read = client.job_result

    async def counting(job_id: str) -> SwarmJobResult | None:
        nonlocal found
        stored = await read(job_id)
        found += stored is not None
        return stored

    monkeypatch.setattr(client, "job_result", counting)
    heard: list[JobProgress] = []
    # When a small job runs to its end
    result = await client.run_job(
        SwarmJob(capability="echo", inputs=[{"i": 1}, {"i": 2}]),
        timeout=60,
        on_progress=heard.append,
    )
    # Then its done event carried the result, which is the one returned, with no store read
    assert heard[-1].state == "done" and heard[-1].result == result
    assert found == 0
    # and it is exactly the stored one
    assert await read(result.job_id) == result


async def test_vote_returns_the_majority_when_one_agent_lies(
    client: SwarmClient, tmp_path: Path
) -> None:
    # Given an ensemble of every agent (3), one of which answers wrongly
    job = SwarmJob(
        capability="answer", payload={"liar": liar_file(tmp_path)}, ensemble=3, reduce="vote"
    )
    # When they vote
    result = await client.run_job(job, timeout=60)
    # Then the majority answer wins, and three distinct agents ran it
    assert result.status == "succeeded", result.error
    assert result.value == {"answer": 42}
    assert len({o.agent_id for o in result.outcomes if o.agent_id}) == 3


async def test_quorum_fails_cleanly_when_too_few_agree(client: SwarmClient, tmp_path: Path) -> None:
    liar = liar_file(tmp_path)
    # Given three agents, one lying, asked for a quorum of 3
    result = await client.run_job(
        SwarmJob(
            capability="answer", payload={"liar": liar}, ensemble=3, reduce="quorum", quorum=3
        ),
        timeout=60,
    )
    # Then the job fails with no_quorum, naming how many agreed
    assert result.status == "failed"
    assert result.error is not None and result.error.code is ErrorCode.NO_QUORUM
    assert "Quorum of 3 not reached" in result.error.message
    # and a quorum of 2 is reached
    agreed = await client.run_job(
        SwarmJob(
            capability="answer", payload={"liar": liar}, ensemble=3, reduce="quorum", quorum=2
        ),
        timeout=60,
    )
    assert agreed.status == "succeeded" and agreed.value == {"answer": 42}


async def test_a_tied_vote_follows_the_tie_rule(client: SwarmClient, tmp_path: Path) -> None:
    # Given two agents that answer differently (the first to claim its file lies)
    def job(claim: str, tie: str) -> SwarmJob:
        return SwarmJob(
            capability="answer",
            payload={"liar": str(tmp_path / claim)},
            ensemble=2,
            reduce="vote",
            tie=tie,  # type: ignore[arg-type]
        )

    # When they vote with tie="fail", the job fails with no_quorum
    tied = await client.run_job(job("a", "fail"), timeout=60)
    assert tied.status == "failed"
    assert tied.error is not None and tied.error.code is ErrorCode.NO_QUORUM
    assert "tied" in tied.error.message
    # With tie="lowest", the answer of the lowest-numbered sub-task wins
    lowest = await client.run_job(job("b", "lowest"), timeout=60)
    assert lowest.status == "succeeded"
    assert lowest.value == lowest.outcomes[0].output


async def test_first_success_and_a_user_reduce_capability(client: SwarmClient) -> None:
    first = await client.run_job(
        SwarmJob(capability="echo", inputs=[{"i": i} for i in range(5)], reduce="first"),
        timeout=60,
    )
    assert first.status == "succeeded" and first.value in [{"i": i} for i in range(5)]
    # The reduce capability gets every sub-result as its payload
    summed = await client.run_job(
        SwarmJob(
            capability="echo",
            inputs=[{"n": i} for i in range(10)],
            reduce="capability",
            reduce_capability="total",
        ),
        timeout=60,
    )
    assert summed.status == "succeeded", summed.error
    assert summed.value == {"sum": 45, "count": 10}


async def test_failed_sub_tasks_make_a_partial_job(client: SwarmClient) -> None:
    inputs = [{"i": 0}, {"i": 1}]
    ok = await client.run_job(SwarmJob(capability="echo", inputs=inputs), timeout=60)
    failing = await client.run_job(
        SwarmJob(capability="fail", inputs=[{"message": "no"}], max_attempts=1), timeout=60
    )
    assert ok.status == "succeeded"
    assert failing.status == "failed" and failing.error is not None
    assert failing.outcomes[0].status is ResultStatus.FAILED


async def test_cancel_ends_the_job_and_its_sub_tasks(client: SwarmClient) -> None:
    # Given a job of slow sub-tasks, more than the swarm runs at once (they queue)
    job = SwarmJob(capability="slow_echo", inputs=[{"ms": 5000, "i": i} for i in range(40)])
    accepted = await client.submit_job(job)
    assert accepted.total == 40 and not accepted.existing
    await wait_until(
        lambda: _running(client, job.id), 20, "the job to report progress", interval=0.1
    )
    # When it is cancelled
    reply = await client.cancel_job(job.id)
    # Then its one result is cancelled, and every unfinished sub-task ends cancelled too
    assert reply.result is not None and reply.result.status == "cancelled"
    assert (await client.wait_job(job.id, timeout=10)).status == "cancelled"

    async def sub_tasks_cancelled() -> bool:
        found = [await client.result(_sub_task(client, job.id, n)) for n in range(40)]
        return all(r is not None for r in found)

    await wait_until(sub_tasks_cancelled, 30, "every sub-task to have a result")
    found = [await client.result(_sub_task(client, job.id, n)) for n in range(40)]
    statuses = {r.status for r in found if r is not None}
    assert ResultStatus.CANCELLED in statuses
    # Cancelling again answers the same result; an unknown job is not found
    again = await client.cancel_job(job.id)
    assert again.result == reply.result
    with pytest.raises(ServiceError) as info:
        await client.cancel_job("no-such-job")
    assert info.value.code is ErrorCode.NOT_FOUND


async def _running(client: SwarmClient, job_id: str) -> bool:
    status = await client.job_status(job_id)
    return status.progress.state == "running" and status.progress.published


async def test_a_job_past_its_deadline_ends_timed_out(client: SwarmClient) -> None:
    job = SwarmJob(
        capability="slow_echo",
        inputs=[{"ms": 4000}] * 3,
        deadline=time.time() + 1.0,
    )
    result = await client.run_job(job, timeout=30)
    assert result.status == "timed_out"
    assert result.error is not None and result.error.code is ErrorCode.DEADLINE_EXCEEDED


async def test_resubmitting_an_id_answers_the_stored_job(client: SwarmClient) -> None:
    job = SwarmJob(capability="slow_echo", inputs=[{"ms": 300}] * 2)
    first = await client.submit_job(job)
    second = await client.submit_job(job)
    assert not first.existing and second.existing
    result = await client.wait_job(job.id, timeout=30)
    assert result.status == "succeeded"


async def test_limits_are_checked_at_submission(client: SwarmClient) -> None:
    # An input over SWARMHUB_JOB_MAX_INPUT_BYTES (4096 here) is refused before any work
    with pytest.raises(ServiceError, match="SWARMHUB_JOB_MAX_INPUT_BYTES") as info:
        await client.submit_job(
            SwarmJob(capability="echo", inputs=[{"pad": "x" * 100}, {"pad": "x" * 5000}])
        )
    assert info.value.code is ErrorCode.TOO_LARGE and "Input 1" in info.value.message
    with pytest.raises(ServiceError, match="cannot be reached"):
        await client.submit_job(SwarmJob(capability="echo", ensemble=2, reduce="quorum", quorum=3))
    with pytest.raises(ValueError, match="either inputs"):
        SwarmJob(capability="echo", inputs=[{}], ensemble=2)
    assert (await client.job_status("never-submitted")).progress.state == "unknown"


async def test_a_big_map_completes_with_bounded_coordinator_memory(
    cluster: LocalCluster, client: SwarmClient
) -> None:
    # Given a map over 2,000 inputs (10,000 with SWARMHUB_SOAK=1)
    count = 10_000 if SOAK else 2_000
    coordinator = psutil.Process(cluster.pids()["swarm-coordinator"])
    before = coordinator.memory_info().rss
    peak = before
    job = SwarmJob(capability="echo", inputs=[{"i": i} for i in range(count)])

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, coordinator.memory_info().rss)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    began = time.perf_counter()
    try:
        result = await client.run_job(job, timeout=600)
    finally:
        sampler.cancel()
    took = time.perf_counter() - began
    # Then it completes, every output in order, and the coordinator's memory stays bounded
    assert result.status == "succeeded", result.error
    assert result.value == [{"i": i} for i in range(count)]
    growth_mb = (peak - before) / 2**20
    print(
        f"map of {count:,}: {took:.1f} s, coordinator RSS {before / 2**20:.1f} MB -> peak "
        f"{peak / 2**20:.1f} MB (+{growth_mb:.1f} MB)"
    )
    assert growth_mb < 150
    assert subjects.job_key("job", client.tenant, job.id) == f"job.{client.tenant}.{job.id}"


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swarmhub", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_swarm_cli_runs_a_map_and_a_vote_and_shows_status(
    cluster: LocalCluster, client: SwarmClient, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(5)))
    mapped = await asyncio.to_thread(
        _cli, cluster.url, "swarm", "run", "echo", "--inputs", str(inputs), "--wait", "--json"
    )
    assert mapped.returncode == 0, mapped.stderr
    result = json.loads(mapped.stdout)
    assert result["status"] == "succeeded" and result["value"] == [{"i": i} for i in range(5)]
    assert "done" in mapped.stderr and "of 5" in mapped.stderr  # the live progress line
    voted = await asyncio.to_thread(
        _cli,
        cluster.url,
        "swarm",
        "run",
        "answer",
        "--payload",
        json.dumps({"liar": str(tmp_path / "liar")}),
        "--ensemble",
        "3",
        "--reduce",
        "vote",
        "--wait",
    )
    assert voted.returncode == 0, voted.stderr
    assert '{"answer": 42}' in voted.stdout
    status = await asyncio.to_thread(
        _cli, cluster.url, "swarm", "status", result["job_id"], "--json"
    )
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "succeeded"
    unknown = await asyncio.to_thread(_cli, cluster.url, "swarm", "status", "nope")
    assert unknown.returncode == 3
