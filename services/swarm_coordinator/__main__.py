"""Run the swarm-coordinator: `python -m swarmhub.swarm_coordinator`."""

from swarmhub.config import CoordinatorSettings
from swarmhub.service_main import service_main
from swarmhub.swarm_coordinator.service import SwarmCoordinator

if __name__ == "__main__":
    service_main(SwarmCoordinator, CoordinatorSettings)
