"""task-router: consumes the task stream, dispatches to live agents, records one final result."""
