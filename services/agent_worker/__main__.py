"""Run one agent-worker: `python -m agent_worker`."""

from agent_worker.service import AgentWorker
from swarmhub.runtime import run_service

if __name__ == "__main__":
    run_service(AgentWorker)
