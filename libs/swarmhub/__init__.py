"""SwarmHub: a task hub for swarms of AI agents, built on NATS.

The public API: `App` (declare your capabilities), `SwarmClient` (async) and
`swarmhub.sync.connect` (blocking), `Task` and `TaskResult`, and the errors (`SwarmHubError` and
its families). Each is imported on first use, so that `import swarmhub.<module>` (every service
does) loads nothing else.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "App",
    "ErrorCode",
    "NoAgent",
    "NonRetryableError",
    "Priority",
    "Rejected",
    "ResultStatus",
    "ServiceError",
    "SwarmClient",
    "SwarmHubError",
    "Task",
    "TaskFailed",
    "TaskResult",
    "TaskTimeout",
    "TimedOut",
    "Unavailable",
    "__version__",
]

_HOME = {"App": "app", "SwarmClient": "client", "Priority": "schemas", "ResultStatus": "schemas"}
_HOME |= {"Task": "schemas", "TaskResult": "schemas"}

if TYPE_CHECKING:
    from swarmhub.app import App
    from swarmhub.client import SwarmClient
    from swarmhub.errors import (
        ErrorCode,
        NoAgent,
        NonRetryableError,
        Rejected,
        ServiceError,
        SwarmHubError,
        TaskFailed,
        TaskTimeout,
        TimedOut,
        Unavailable,
    )
    from swarmhub.schemas import Priority, ResultStatus, Task, TaskResult


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'swarmhub' has no attribute {name!r}")
    return getattr(import_module(f"swarmhub.{_HOME.get(name, 'errors')}"), name)
