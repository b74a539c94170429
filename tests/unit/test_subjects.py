"""Subject names are built in one place and reject unsafe tokens."""

from __future__ import annotations

import pytest

from swarmhub import subjects


def test_builders_follow_the_contract() -> None:
    assert subjects.task_submit("ann", "echo") == "hub.task.submit.ann.echo.normal"
    assert subjects.task_result("ann", "abc") == "hub.task.result.ann.abc"
    assert subjects.result_key("ann", "abc") == "ann.abc"
    assert subjects.task_status("ann") == "hub.task.status.ann"
    assert subjects.task_cancel("ann") == "hub.task.cancel.ann"
    assert subjects.task_progress("ann", "abc") == "hub.task.progress.ann.abc"
    assert subjects.task_cancelled("ann", "abc") == "hub.task.cancelled.ann.abc"
    assert subjects.scoped_of(subjects.task_cancelled("ann", "abc")) == ("ann", "abc")
    assert (
        subjects.tenant_result_gets("ann")
        == "$JS.API.DIRECT.GET.KV_hub_results.$KV.hub_results.ann.>"
    )
    assert subjects.agent_run("agent-1") == "hub.agent.agent-1.run"
    assert subjects.swarm_heartbeat("agent-1") == "hub.swarm.heartbeat.agent-1"
    assert subjects.cache_inval("ns") == "hub.cache.inval.ns"
    assert subjects.task_dead("echo") == "hub.task.dead.echo"


def test_dead_letter_subject_survives_a_bad_capability() -> None:
    assert subjects.task_dead("bad.token") == "hub.task.dead._invalid"


@pytest.mark.parametrize("token", ["", "a.b", "a b", "*", ">", "a\nb"])
def test_unsafe_tokens_are_rejected_with_a_sentence(token: str) -> None:
    with pytest.raises(ValueError, match="must contain only"):
        subjects.task_submit("ann", token)
    with pytest.raises(ValueError, match="must contain only"):
        subjects.task_submit(token, "echo")


def test_stream_subjects_cover_the_builders() -> None:
    assert subjects.task_submit("t", "x").startswith(subjects.TASK_SUBMIT_ALL[:-1])
    assert subjects.task_submit("t", "x").startswith(subjects.tenant_submits("t")[:-1])
    assert subjects.task_result("t", "x").startswith(subjects.tenant_results("t")[:-1])
    assert subjects.task_progress("t", "x").startswith(subjects.tenant_progress("t")[:-1])
    assert subjects.task_dead("x").startswith(subjects.TASK_DEAD_ALL[:-1])


def test_srv_subjects_are_the_three_adr32_levels() -> None:
    assert subjects.srv_subjects("PING", "cache", "id1") == [
        "$SRV.PING",
        "$SRV.PING.cache",
        "$SRV.PING.cache.id1",
    ]


def test_capability_of_submit_subject() -> None:
    assert subjects.capability_of(subjects.task_submit("ann", "cpu")) == "cpu"
    assert subjects.tenant_of(subjects.task_submit("ann", "cpu")) == "ann"
