"""Run one task-router: `python -m swarmhub.task_router`."""

from swarmhub.config import RouterSettings
from swarmhub.service_main import service_main
from swarmhub.task_router.service import TaskRouter

if __name__ == "__main__":
    service_main(TaskRouter, RouterSettings)
