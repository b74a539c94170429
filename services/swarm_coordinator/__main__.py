"""Run the swarm-coordinator: `python -m swarm_coordinator`."""

from swarmhub.runtime import run_service

from swarm_coordinator.service import SwarmCoordinator

if __name__ == "__main__":
    run_service(SwarmCoordinator)
