"""Run the swarm-coordinator: `python -m swarm_coordinator`."""

from swarm_coordinator.service import SwarmCoordinator
from swarmhub.runtime import run_service

if __name__ == "__main__":
    run_service(SwarmCoordinator)
