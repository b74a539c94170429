"""Which job a key or a request means: per tenant, and the open tenant's jobs of before tenants."""

from __future__ import annotations

from swarmhub import roles, subjects
from swarmhub.schemas import JobRequest
from swarmhub.swarm_coordinator.jobs import JobRef, refs_of


def test_a_job_is_stored_heard_and_run_under_its_tenant() -> None:
    ref = JobRef("ann", "j1")
    assert ref.key("job") == "job.ann.j1"
    assert ref.key("result") == "result.ann.j1"
    assert ref.event == "hub.swarm.job.event.ann.j1"
    assert ref.sub_id(0) == subjects.job_sub_task("ann", "j1", 0)
    assert JobRef.of_key(ref.key("job")) == ref
    # The same id of another tenant is another job, with other sub-tasks
    other = JobRef("bob", "j1")
    assert other != ref and other.key("job") != ref.key("job")
    assert other.sub_id(0) != ref.sub_id(0)


def test_a_job_of_before_tenants_keeps_its_keys_and_sub_task_ids() -> None:
    old = JobRef.of_key("job.j1")
    assert old == JobRef(subjects.OPEN_TENANT, "j1", legacy=True)
    assert old.key("progress") == "progress.j1"
    assert old.sub_id(2) == "j1-2"  # as published before the upgrade
    assert old.sub_id("reduce") == "j1-reduce"
    assert old.event == subjects.swarm_job_event(subjects.OPEN_TENANT, "j1")


def test_only_the_open_tenant_looks_under_the_keys_of_before_tenants() -> None:
    assert refs_of(JobRequest(job_id="j1", tenant="ann")) == [JobRef("ann", "j1")]
    assert refs_of(JobRequest(job_id="j1")) == [
        JobRef(subjects.OPEN_TENANT, "j1"),
        JobRef(subjects.OPEN_TENANT, "j1", legacy=True),
    ]


def test_a_client_may_use_only_its_own_jobs() -> None:
    publish = roles.CLIENT.permissions("ann")["publish"]["allow"]  # type: ignore[index]
    subscribe = roles.CLIENT.permissions("ann")["subscribe"]["allow"]  # type: ignore[index]
    jobs_stream = subjects.kv_stream(subjects.JOBS_BUCKET)
    assert subjects.job_submit("ann") in publish
    assert subjects.tenant_job_gets("ann") in publish
    assert subjects.tenant_job_events("ann") in subscribe
    assert subjects.SWARM_JOB_EVENT_ALL not in subscribe
    assert not [p for p in publish if jobs_stream in p and p != subjects.tenant_job_gets("ann")]
    # The operator may do what a client may, for its own jobs too
    operator = roles.OPERATOR.permissions("ops")["publish"]["allow"]  # type: ignore[index]
    assert subjects.job_cancel("ops") in operator and subjects.tenant_job_gets("ops") in operator
