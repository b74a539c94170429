"""Run one agent-worker: `python -m agent_worker`."""

from swarmhub.runtime import run_service

from agent_worker.service import AgentWorker

if __name__ == "__main__":
    run_service(AgentWorker)
