"""The `task` scenario: submit a task to JetStream and wait for its result event, end to end."""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.msg import Msg

from swarmhub import codec, subjects
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.loadgen.scenarios.base import Scenario
from swarmhub.schemas import ResultStatus, Task, TaskResult
from swarmhub.store import holds_value
from swarmhub.waits import within

_STATUS_CODES = {
    ResultStatus.TIMED_OUT: ErrorCode.TIMEOUT,
    ResultStatus.DEAD_LETTERED: ErrorCode.ATTEMPTS_EXHAUSTED,
    ResultStatus.FAILED: ErrorCode.HANDLER_ERROR,
}


def result_error(result: TaskResult) -> ServiceError | None:
    """The error a non-successful result stands for (None when it succeeded)."""
    if result.status is ResultStatus.SUCCEEDED:
        return None
    if result.error is not None:
        return ServiceError(result.error.code, result.error.message)
    code = _STATUS_CODES.get(result.status, ErrorCode.INTERNAL)
    return ServiceError(code, f"Task {result.task_id} ended {result.status.value}.")


class TaskScenario(Scenario):
    """One operation = one task submitted and its one final result received."""

    name = "task"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: dict[str, asyncio.Future[TaskResult]] = {}
        self._sub: Any = None
        self.cached = 0
        self.retried = 0
        self.from_store = 0

    async def setup(self) -> None:
        """Listen to the tenant's result events once, instead of one subscription per task."""

        async def on_result(msg: Msg) -> None:
            future = self._waiting.get(subjects.scoped_of(msg.subject)[1])
            if future is None or future.done() or not holds_value(msg):
                return
            try:
                future.set_result(codec.decode(msg.data, TaskResult))
            except ServiceError as exc:
                future.set_exception(exc)

        self._sub = await self.client.bus.nc.subscribe(
            subjects.tenant_results(self.client.tenant), cb=on_result
        )
        await self.client.bus.nc.flush()

    async def teardown(self) -> None:
        """Stop listening."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def run(self, kind: str, seq: int) -> None:
        """Submit, then wait for the result event (the stored result is the fallback)."""
        task = Task(
            capability=self.config.capability,
            payload=self.config.body(seq),
            attempt_timeout=self.config.timeout,
        )
        future: asyncio.Future[TaskResult] = asyncio.get_running_loop().create_future()
        self._waiting[task.id] = future
        try:
            await self.client.submit(task)
            try:
                result = await within(future, self.config.timeout)
            except TimeoutError:
                stored = await self.client.result(task.id)
                if stored is None:
                    raise ServiceError(
                        ErrorCode.TIMEOUT,
                        f"Task {task.id} had no result within {self.config.timeout:g} s.",
                    ) from None
                self.from_store += 1
                result = stored
        finally:
            self._waiting.pop(task.id, None)
        if result.cached:
            self.cached += 1
        if result.attempts > 1:
            self.retried += 1
        error = result_error(result)
        if error is not None:
            raise error

    def extras(self) -> dict[str, Any]:
        """Results served from the memo cache, retried, or read from the store after a timeout."""
        return {"cached": self.cached, "retried": self.retried, "from_store": self.from_store}
