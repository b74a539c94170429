"""Run the swarm-coordinator: `python -m swarm_coordinator`."""

from swarm_coordinator.service import SwarmCoordinator
from swarmhub.config import CoordinatorSettings
from swarmhub.service_main import service_main

if __name__ == "__main__":
    service_main(SwarmCoordinator, CoordinatorSettings)
