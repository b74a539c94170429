"""SwarmClient for scripts and notebooks: the same calls without async/await.

    from swarmhub.sync import connect

    with connect() as hub:
        print(hub.run("echo", {"text": "hi"}).output)

The async client runs on an event loop in a background thread of its own, so this works in a
plain script and inside a notebook whose own loop is already running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

from swarmhub.client import Progress, SwarmClient
from swarmhub.schemas import AgentRecord, CancelReply, Task, TaskResult

T = TypeVar("T")


class SyncClient:
    """A blocking facade over SwarmClient; each call waits for its answer."""

    def __init__(
        self, url: str | None = None, *, role: str = "client", name: str = "swarmhub-sync"
    ):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        try:
            self.client: SwarmClient = self._call(SwarmClient.open(url, name=name, role=role))
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def submit(
        self, task: Task | str, payload: dict[str, Any] | None = None, **fields: Any
    ) -> Task:
        """Publish a task durably (see SwarmClient.submit)."""
        return self._call(self.client.submit(task, payload, **fields))

    def run(
        self,
        task: Task | str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float = 60.0,
        check: bool = True,
        **fields: Any,
    ) -> TaskResult:
        """Submit a task and wait for its result (see SwarmClient.run)."""
        return self._call(self.client.run(task, payload, timeout=timeout, check=check, **fields))

    def wait(self, task_id: str, timeout: float = 60.0, *, check: bool = True) -> TaskResult:
        """Wait for a task's stored result (see SwarmClient.wait)."""
        return self._call(self.client.wait(task_id, timeout, check=check))

    def result(self, task_id: str) -> TaskResult | None:
        """The stored result of a task, or None while it has none."""
        return self._call(self.client.result(task_id))

    def map(
        self,
        capability: str,
        payloads: Iterable[dict[str, Any]],
        *,
        timeout: float = 300.0,
        progress: Progress | None = None,
        **fields: Any,
    ) -> list[TaskResult]:
        """Run `capability` once per payload; results in input order (see SwarmClient.map)."""
        return self._call(
            self.client.map(capability, payloads, timeout=timeout, progress=progress, **fields)
        )

    def cancel(self, task_id: str) -> CancelReply:
        """Cancel a task (see SwarmClient.cancel)."""
        return self._call(self.client.cancel(task_id))

    def agents(self) -> list[AgentRecord]:
        """Live agents as the registry holds them."""
        return self._call(self.client.agents())

    def close(self) -> None:
        """Close the connection and stop the background loop."""
        if self._thread.is_alive():
            try:
                self._call(self.client.close())
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(url: str | None = None, *, role: str = "client") -> SyncClient:
    """A blocking client connected to `url` (as SwarmClient.connect finds it)."""
    return SyncClient(url, role=role)
