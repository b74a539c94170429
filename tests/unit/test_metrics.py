"""Metrics a process exports: only its service's, bounded labels, series alerts rely on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from swarmhub import metrics
from swarmhub.breaker import CircuitState, forget_breaker_metric, telemetry_listener
from swarmhub.errors import ErrorCode
from swarmhub.registry import count_alive
from swarmhub.schemas import AgentRecord, ErrorInfo, ResultStatus, TaskResult
from swarmhub.task_router.backlog import oldest_age
from swarmhub.task_router.decisions import fault_of
from swarmhub.task_router.results import count_capabilities


def exposition(service: str) -> str:
    registry = CollectorRegistry()
    metrics.export(service, registry)
    return generate_latest(registry).decode()


def test_a_process_exports_shared_metrics_and_only_its_own() -> None:
    router = exposition("task-router")
    assert "swarmhub_nats_connected" in router and "swarmhub_build_info" in router
    assert "swarmhub_agents_alive" in router
    assert "swarmhub_worker_capacity" not in router and "swarmhub_cache_entries" not in router
    worker = exposition("agent-worker")
    assert "swarmhub_worker_capacity" in worker and "swarmhub_agents_alive" not in worker


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
