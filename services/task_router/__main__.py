"""Run one task-router: `python -m task_router`."""

from swarmhub.runtime import run_service
from task_router.service import TaskRouter

if __name__ == "__main__":
    run_service(TaskRouter)
