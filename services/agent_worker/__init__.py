"""agent-worker: hosts capability handlers and runs tasks dispatched by the task-router."""
