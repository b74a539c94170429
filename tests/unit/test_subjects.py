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


def test_swarm_job_builders_are_per_tenant() -> None:
    assert subjects.job_submit("ann") == "hub.swarm.job.submit.ann"
    assert subjects.job_status("ann") == "hub.swarm.job.status.ann"
    assert subjects.job_cancel("ann") == "hub.swarm.job.cancel.ann"
    assert subjects.swarm_job_event("ann", "j1") == "hub.swarm.job.event.ann.j1"
    assert subjects.tenant_job_events("ann") == "hub.swarm.job.event.ann.*"
    assert subjects.job_key("result", "ann", "j1") == "result.ann.j1"
    assert subjects.legacy_job_key("result", "j1") == "result.j1"
    assert subjects.tenant_job_gets("ann") == "$JS.API.DIRECT.GET.KV_hub_jobs.$KV.hub_jobs.*.ann.*"
    for builder in (subjects.job_submit, subjects.job_status, subjects.job_cancel):
        assert fnmatch_nats(builder("ann"), "hub.swarm.job.>")
    with pytest.raises(ValueError, match="must contain only"):
        subjects.job_submit("a.b")
    with pytest.raises(ValueError, match="Invalid job entry"):
        subjects.job_key("secrets", "ann", "j1")


def test_a_jobs_key_names_its_tenant_and_an_old_key_is_the_open_tenants() -> None:
    for kind in subjects.JOB_KINDS:
        assert subjects.job_of_key(subjects.job_key(kind, "ann", "j1")) == ("ann", "j1", False)
        assert subjects.job_of_key(subjects.legacy_job_key(kind, "j1")) == (
            subjects.OPEN_TENANT,
            "j1",
            True,
        )
    with pytest.raises(ValueError, match="Invalid jobs bucket key"):
        subjects.job_of_key("job.a.b.c")


def test_sub_task_ids_differ_between_tenants_and_are_task_ids() -> None:
    # The same job id under two tenants, and tenants whose names run into the job id
    ann = subjects.job_sub_task("ann", "j1", 0)
    bob = subjects.job_sub_task("bob", "j1", 0)
    assert ann != bob
    assert ann.startswith("j1-") and ann.endswith("-0")
    assert subjects.job_sub_task("ann", "j1", "reduce").endswith("-reduce")
    assert subjects.job_sub_task("a-b", "c", 0) != subjects.job_sub_task("a", "b-c", 0)
    assert subjects.legacy_job_sub_task("j1", 3) == "j1-3"
    # The longest job id and tenant still make a task id (at most 128 token characters)
    longest = subjects.job_sub_task("t" * 128, "j" * 96, "reduce")
    assert len(longest) <= 128 and subjects.check_token(longest, "task id") == longest
    # Read from the right, the digest's fixed width makes (job id, tenant, n) recoverable
    ids = {
        subjects.job_sub_task(tenant, job, n)
        for tenant in ("ann", "bob", "a-b", "_open")
        for job in ("j1", "j1-0", "x", "x-1")
        for n in (0, 1, 10)
    }
    assert len(ids) == 4 * 4 * 3


def fnmatch_nats(subject: str, pattern: str) -> bool:
    """Whether a NATS subject matches a wildcard pattern (`*` one token, `>` the rest)."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for i, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > i
        if i >= len(tokens) or (want != "*" and want != tokens[i]):
            return False
    return len(tokens) == len(wanted)


def test_a_submit_id_is_the_tenants_key_with_a_tag_only_its_key_makes() -> None:
    assert subjects.submit_id("ann", "abc") == "ann.abc"
    tagged = subjects.submit_id("ann", "abc", b"k" * 32)
    assert tagged.startswith("ann.abc.") and len(tagged) == len("ann.abc.") + 16
    assert subjects.submit_id("ann", "abc", b"k" * 32) == tagged  # the same on every retry
    assert subjects.submit_id("ann", "abc", b"j" * 32) != tagged
    assert subjects.submit_id("bob", "abc", b"k" * 32) != "bob." + tagged.removeprefix("ann.")


def test_a_retrys_id_is_tagged_like_a_submits() -> None:
    assert subjects.tagged_id("ann.abc.a2", None) == "ann.abc.a2"
    tagged = subjects.tagged_id("ann.abc.a2", b"r" * 32)
    assert tagged.startswith("ann.abc.a2.") and tagged != subjects.tagged_id(
        "ann.abc.a2", b"s" * 32
    )
    assert subjects.submit_id("ann", "abc", b"r" * 32) == subjects.tagged_id("ann.abc", b"r" * 32)
