"""Recording outcomes: the one final result per task (create-once), its event, dead letters."""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from swarmhub import metrics, subjects, tracing
from swarmhub.bus import Bus
from swarmhub.errors import ServiceError
from swarmhub.schemas import DeadLetter, ErrorInfo, ResultStatus, TaskResult
from swarmhub.store import create_once
from swarmhub.task_router.decisions import DEAD_LETTER_REASONS, fault_of
from swarmhub.tracing import SpanKind


class ResultStore:
    """Writes final results to the results bucket (first writer wins) and announces them.

    Results are kept per tenant (`<tenant>.<task id>`), so one tenant's id never reaches another's.
    """

    def __init__(self, bus: Bus, kv: KeyValue) -> None:
        self.bus = bus
        self.kv = kv
        self.retry_for = 10.0
        self.by_status: dict[str, int] = {}

    async def exists(self, tenant: str, task_id: str) -> bool:
        """Whether a tenant's task already has its final result."""
        try:
            await self.kv.get(subjects.result_key(tenant, task_id))
            return True
        except KeyNotFoundError:
            return False

    async def get(self, tenant: str, task_id: str) -> TaskResult | None:
        """The stored result of a tenant's task, if any."""
        try:
            entry = await self.kv.get(subjects.result_key(tenant, task_id))
        except KeyNotFoundError:
            return None
        return self.bus.decode(entry.value or b"", TaskResult)

    def encode(self, result: TaskResult) -> tuple[TaskResult, bytes]:
        """The result's bytes; an output too large to store becomes a `failed` result instead."""
        try:
            return result, self.bus.encode(result)
        except ServiceError as exc:
            failed = result.model_copy(
                update={
                    "status": ResultStatus.FAILED,
                    "output": None,
                    "error": ErrorInfo(
                        code=exc.code, message=f"Task output rejected: {exc.message}"
                    ),
                }
            )
            return failed, self.bus.encode(failed)

    async def record(self, tenant: str, result: TaskResult) -> bool:
        """Store a tenant's task's one final result (its event follows); False when another got
        there first."""
        result, data = self.encode(result)
        traced = tracing.sampled()  # (the delivery's span records: a sampled trace)
        key = subjects.result_key(tenant, result.task_id)
        if traced:
            _trace_outcome(result)
            with tracing.child_span("record result"):
                tracing.annotate(task_id=result.task_id, status=result.status.value)
                # The write is the announcement: once stored, the bucket republishes it as the
                # result event (a refused second write is never republished).
                event = subjects.task_result(tenant, result.task_id)
                with tracing.send_span(
                    subjects.TEMPLATES["result"], SpanKind.PRODUCER, None, len(data), event
                ):
                    if not await self._create(key, data):
                        return False
        elif not await self._create(key, data):  # unsampled: no span to make, none to ask for
            return False
        status = result.status.value
        self.by_status[status] = self.by_status.get(status, 0) + 1
        capability = metrics.capabilities(result.capability)
        metrics.child(metrics.TASKS_COMPLETED, capability, status, fault_of(result)).inc()
        # The exemplar links a latency bucket to this task's trace (Grafana -> Jaeger).
        metrics.child(metrics.TASK_DURATION, capability).observe(
            result.timings.total_ms / 1000, tracing.exemplar() if traced else None
        )
        return True

    async def _create(self, key: str, data: bytes) -> bool:
        """Create-only write, retried in place (the message stays held) while the store is away."""
        return await create_once(self.bus, subjects.RESULTS_BUCKET, key, data, self.retry_for)


def _trace_outcome(result: TaskResult) -> None:
    """Put a task's final status on the span processing it; an error status when it failed."""
    tracing.annotate(status=result.status.value, agent_id=result.agent_id)
    if result.status is not ResultStatus.SUCCEEDED and result.error is not None:
        span = tracing.current_span()
        tracing.record_failure(span, result.error.code.value, result.error.message)


def count_capabilities(names: list[str]) -> None:
    """Admit capabilities as label values; start their dead-letter counts at 0.

    A counter series that first appears at 1 shows no increase, so an alert on the first dead
    letter of a capability needs the 0 scraped before it.
    """
    for capability in metrics.capabilities.register(names):
        for reason in DEAD_LETTER_REASONS:
            metrics.DEAD_LETTERS.labels(capability, reason.value)


class DeadLetters:
    """Copies tasks the hub gives up on into the dead-letter stream, with their reason."""

    def __init__(self, bus: Bus, log: Any) -> None:
        self.bus = bus
        self.log = log

    async def send(
        self, msg: Msg, task_id: str | None, capability: str, error: ErrorInfo, attempts: int
    ) -> None:
        """Copy the original task before it leaves the task stream."""
        seq = msg.metadata.sequence.stream
        if tracing.sampled():
            tracing.annotate(destination=msg.subject, dead_letter_reason=error.code.value)
            if task_id is None:  # no result will be recorded to carry the failure
                tracing.record_failure(tracing.current_span(), error.code.value, error.message)
        # An oversize body cannot be copied whole into a message of the same size limit.
        room = self.bus.limits.body // 2
        letter = DeadLetter(
            task_id=task_id,
            capability=capability,
            subject=msg.subject,
            error=error,
            attempts=attempts,
            body=msg.data[:room],
            body_truncated=len(msg.data) > room,
            first_seen=msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else None,
        )
        await self.bus.js_publish(
            subjects.task_dead(capability),
            letter,
            msg_id=f"dead-{task_id or 'seq'}-{seq}",
            template=subjects.TEMPLATES["dead"],
        )
        metrics.DEAD_LETTERS.labels(metrics.capabilities(capability), error.code.value).inc()
        self.log.info(
            "dead_lettered", task_id=task_id, capability=capability[:128], code=error.code.value
        )
