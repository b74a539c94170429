"""Run one agent-worker: `python -m agent_worker`."""

from agent_worker.service import AgentWorker
from swarmhub.config import WorkerSettings
from swarmhub.service_main import service_main

if __name__ == "__main__":
    service_main(AgentWorker, WorkerSettings)
