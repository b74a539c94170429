"""The `mixed` scenario: a weighted blend of the other scenarios."""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any

from swarmhub.client import SwarmClient
from swarmhub.loadgen.scenarios.base import Scenario, ScenarioConfig


class MixedScenario(Scenario):
    """Each request picks a scenario by weight, then that scenario's operation."""

    name = "mixed"

    def __init__(
        self,
        client: SwarmClient,
        config: ScenarioConfig,
        rng: random.Random,
        parts: dict[str, Scenario],
    ) -> None:
        super().__init__(client, config, rng)
        if not parts:
            raise ValueError("A mixed scenario needs at least one part.")
        self.parts = parts
        names = list(parts)
        weights = [config.mix[n] for n in names]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("--mix weights must be non-negative and not all 0.")
        self.names = names
        self.cumulative = list(itertools.accumulate(weights))
        self.owner: dict[str, Scenario] = {}

    async def setup(self) -> None:
        """Set up every part."""
        for part in self.parts.values():
            await part.setup()

    async def teardown(self) -> None:
        """Tear down every part."""
        for part in self.parts.values():
            await part.teardown()

    def pick(self, seq: int) -> str:
        """A part by weight, then that part's operation."""
        point = self.rng.random() * self.cumulative[-1]
        index = min(bisect.bisect_right(self.cumulative, point), len(self.names) - 1)
        part = self.parts[self.names[index]]
        kind = part.pick(seq)
        self.owner[kind] = part
        return kind

    async def run(self, kind: str, seq: int) -> None:
        """Run the operation in the part that picked it."""
        await self.owner[kind].run(kind, seq)

    def extras(self) -> dict[str, Any]:
        """Every part's figures, by part."""
        return {name: part.extras() for name, part in self.parts.items()}
