"""Metrics a process exports: only its service's, bounded labels, series alerts rely on."""

from __future__ import annotations

import time

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from swarmhub import metrics
from swarmhub.breaker import (
    TRANSITIONS,
    CircuitState,
    forget_breaker_metric,
    telemetry_listener,
)
from swarmhub.config import CoordinatorSettings
from swarmhub.errors import ErrorCode
from swarmhub.registry import count_alive
from swarmhub.schemas import (
    AgentRecord,
    ErrorInfo,
    JobRecord,
    ResultStatus,
    SwarmJob,
    SwarmJobResult,
    TaskResult,
)
from swarmhub.swarm_coordinator.jobs import Job, JobRef, Jobs, count_finished
from swarmhub.task_router.backlog import oldest_age
from swarmhub.task_router.decisions import fault_of
from swarmhub.task_router.results import count_capabilities
from tests.unit.test_breaker import FakeClock, fail, make, succeed, trip


def exposition(service: str) -> str:
    registry = CollectorRegistry()
    metrics.export(service, registry)
    return generate_latest(registry).decode()


def sample(metric: MetricWrapperBase, name: str, **labels: str) -> float:
    """The value of one series of `metric` (0 while it has none), registered or not."""
    for family in metric.collect():
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return found.value
    return 0.0


def test_a_process_exports_shared_metrics_and_only_its_own() -> None:
    router = exposition("task-router")
    assert "swarmhub_nats_connected" in router and "swarmhub_build_info" in router
    assert "swarmhub_agents_alive" in router
    assert "swarmhub_worker_capacity" not in router and "swarmhub_cache_entries" not in router
    assert "swarmhub_jobs_running" not in router
    worker = exposition("agent-worker")
    assert "swarmhub_worker_capacity" in worker and "swarmhub_agents_alive" not in worker
    coordinator = exposition("swarm-coordinator")
    assert "swarmhub_jobs_running" in coordinator
    assert "# TYPE swarmhub_job_duration_seconds histogram" in coordinator


def test_export_is_idempotent() -> None:
    registry = CollectorRegistry()
    metrics.export("cache", registry)
    metrics.export("cache", registry)  # a second call must not raise "Duplicated timeseries"


def test_capability_labels_are_registered_names_or_other() -> None:
    labels = metrics.CapabilityLabels(limit=2)
    assert labels.register(["echo", "sum", "third"]) == ["echo", "sum"]
    assert (labels("echo"), labels("third"), labels("nosuch")) == ("echo", "other", "other")
    assert labels.register(["echo"]) == []


def test_dead_letter_series_start_at_zero_for_each_new_capability() -> None:
    count_capabilities(["prewarmed-cap"])
    text = exposition("task-router")
    for reason in ("no_agent", "attempts_exhausted", "invalid_task"):
        line = f'swarmhub_dead_letters_total{{capability="prewarmed-cap",reason="{reason}"}} 0.0'
        assert line in text


def test_a_gone_breaker_leaves_no_series() -> None:
    telemetry_listener("agent-gone-1", CircuitState.CLOSED, CircuitState.OPEN)
    assert 'breaker="agent-gone-1"' in exposition("task-router")
    forget_breaker_metric("agent-gone-1")
    forget_breaker_metric("agent-gone-1")  # twice is harmless
    assert 'breaker="agent-gone-1"' not in exposition("task-router")


def test_a_breaker_cycle_counts_each_transition_by_the_states_left_and_entered() -> None:
    # Given a breaker reporting its changes to the metrics, and every transition counted from 0
    def counts() -> dict[tuple[str, str], float]:
        return {
            (old.label, new.label): sample(
                metrics.BREAKER_TRANSITIONS,
                "swarmhub_breaker_transitions_total",
                from_state=old.label,
                to_state=new.label,
            )
            for old, new in TRANSITIONS
        }

    clock = FakeClock()
    breaker = make(clock)
    breaker.add_listener(telemetry_listener)
    assert 'swarmhub_breaker_transitions_total{from_state="closed",to_state="open"}' in (
        exposition("agent-worker")
    )
    before = counts()
    try:
        # When it opens, fails its first trial, then recovers on the next ones
        trip(breaker)
        clock.advance(5)
        succeed(breaker)
        fail(breaker)
        clock.advance(5)
        succeed(breaker, 2)
        # Then each change is counted once under its pair of states, and nothing else is
        after = counts()
        assert {pair: after[pair] - before[pair] for pair in after} == {
            ("closed", "open"): 1,
            ("open", "half_open"): 2,
            ("half_open", "open"): 1,
            ("half_open", "closed"): 1,
        }
        assert sample(metrics.BREAKER_STATE, "swarmhub_breaker_state", breaker=breaker.name) == 0
    finally:
        forget_breaker_metric(breaker.name)


def test_a_finished_job_counts_its_status_and_observes_its_duration() -> None:
    # Given the job metrics as they stand
    def now(name: str, **labels: str) -> float:
        metric = metrics.JOBS_FINISHED if name.endswith("_total") else metrics.JOB_DURATION
        return sample(metric, name, status="partial", **labels)

    finished = now("swarmhub_jobs_finished_total")
    within_1s = now("swarmhub_job_duration_seconds_bucket", le="1.0")
    within_2_5s = now("swarmhub_job_duration_seconds_bucket", le="2.5")
    total_s = now("swarmhub_job_duration_seconds_sum")
    # When a job ends partial 1.5 s after it was accepted
    count_finished(SwarmJobResult(job_id="j1", status="partial", elapsed_ms=1500.0))
    # Then it is counted once under its status, and its duration lands between 1 s and 2.5 s
    assert now("swarmhub_jobs_finished_total") == finished + 1
    assert now("swarmhub_job_duration_seconds_bucket", le="1.0") == within_1s
    assert now("swarmhub_job_duration_seconds_bucket", le="2.5") == within_2_5s + 1
    assert now("swarmhub_job_duration_seconds_sum") == total_s + 1.5


async def test_the_running_jobs_gauge_goes_up_and_down_with_the_jobs_held() -> None:
    # Given a coordinator's jobs
    jobs = Jobs(CoordinatorSettings(), structlog.get_logger(), lambda: [])
    record = JobRecord(
        job=SwarmJob(capability="echo", inputs=[{}]), accepted_at=time.time(), total=1
    )
    assert sample(metrics.JOBS_RUNNING, "swarmhub_jobs_running") == 0
    # When it holds a job, Then the gauge counts it
    ref = JobRef("t1", record.job.id)
    jobs.running[ref] = Job(ref, record, keep_bytes=1024)
    assert sample(metrics.JOBS_RUNNING, "swarmhub_jobs_running") == 1
    # When it stops (as when it steps down), Then the gauge is back at 0
    await jobs.stop()
    assert sample(metrics.JOBS_RUNNING, "swarmhub_jobs_running") == 0
    # And every final status has its counter from 0 on, so the first job shows as an increase
    text = exposition("swarm-coordinator")
    for status in ("succeeded", "partial", "failed", "timed_out", "cancelled"):
        assert f'swarmhub_jobs_finished_total{{status="{status}"}}' in text


def test_draining_agents_are_not_alive() -> None:
    up = AgentRecord(agent_id="a1", capabilities=["echo"], capacity=1)
    draining = up.model_copy(update={"agent_id": "a2", "state": "draining"})
    assert count_alive([up, draining]) == 1


def test_fault_tells_the_hub_from_the_task() -> None:
    def result(status: ResultStatus, code: ErrorCode | None) -> TaskResult:
        error = ErrorInfo(code=code, message="x") if code else None
        return TaskResult(task_id="t1", capability="echo", status=status, error=error)

    assert fault_of(result(ResultStatus.SUCCEEDED, None)) == "none"
    assert fault_of(result(ResultStatus.FAILED, ErrorCode.HANDLER_ERROR)) == "task"
    assert fault_of(result(ResultStatus.DEAD_LETTERED, ErrorCode.INVALID_TASK)) == "task"
    assert fault_of(result(ResultStatus.TIMED_OUT, ErrorCode.TIMEOUT)) == "hub"
    assert fault_of(result(ResultStatus.DEAD_LETTERED, ErrorCode.NO_AGENT)) == "hub"


def test_oldest_age_reads_nanosecond_timestamps_and_empty_streams() -> None:
    state = {"messages": 3, "first_ts": "2023-11-14T22:13:20.123456789Z"}
    assert abs(oldest_age(state, 1_700_000_010.0) - 9.876544) < 1e-6
    assert oldest_age({"messages": 0, "first_ts": "0001-01-01T00:00:00Z"}, 1e9) == 0.0
    assert oldest_age({"messages": 1, "first_ts": "garbage"}, 1e9) == 0.0
