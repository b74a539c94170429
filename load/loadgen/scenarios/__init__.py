"""Scenarios by name, and the factory that builds one."""

from __future__ import annotations

import random

from swarmhub.client import SwarmClient
from swarmhub.loadgen.scenarios.agent import AgentScenario
from swarmhub.loadgen.scenarios.base import Scenario, ScenarioConfig
from swarmhub.loadgen.scenarios.cache import CacheScenario
from swarmhub.loadgen.scenarios.mixed import MixedScenario
from swarmhub.loadgen.scenarios.swarm import SwarmScenario
from swarmhub.loadgen.scenarios.task import TaskScenario

SIMPLE: dict[str, type[Scenario]] = {
    "task": TaskScenario,
    "agent": AgentScenario,
    "cache": CacheScenario,
    "swarm": SwarmScenario,
}
NAMES = (*SIMPLE, "mixed")

__all__ = ["NAMES", "Scenario", "ScenarioConfig", "build"]


def build(name: str, client: SwarmClient, config: ScenarioConfig) -> Scenario:
    """The scenario called `name`, seeded from the config."""
    rng = random.Random(config.seed)
    if name in SIMPLE:
        return SIMPLE[name](client, config, rng)
    if name == "mixed":
        unknown = sorted(set(config.mix) - set(SIMPLE))
        if unknown:
            raise ValueError(f"Unknown scenarios in --mix: {unknown}; use {sorted(SIMPLE)}.")
        parts = {n: SIMPLE[n](client, config, rng) for n, w in config.mix.items() if w > 0}
        return MixedScenario(client, config, rng, parts)
    raise ValueError(f"Unknown scenario {name!r}; choose one of {', '.join(NAMES)}.")
