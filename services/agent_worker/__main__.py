"""Run one agent-worker: `python -m swarmhub.agent_worker`."""

from swarmhub.agent_worker.service import AgentWorker
from swarmhub.config import WorkerSettings
from swarmhub.service_main import service_main

if __name__ == "__main__":
    service_main(AgentWorker, WorkerSettings)
