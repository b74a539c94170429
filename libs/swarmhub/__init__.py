"""SwarmHub: a task hub for swarms of AI agents, built on NATS.

The public API: `App` (declare your capabilities), `SwarmClient` (async) and
`swarmhub.sync.connect` (blocking), `Task` and `TaskResult`, and the errors (`SwarmHubError` and
its families).
"""

__version__ = "0.1.0"

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
