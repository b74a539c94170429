"""What every scenario offers the drivers, and the settings scenarios share."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from swarmhub.client import SwarmClient


@dataclass(frozen=True)
class ScenarioConfig:
    """Settings of the traffic itself (not of its pacing)."""

    capability: str = "echo"
    payload: dict[str, Any] = field(default_factory=dict)
    payload_bytes: int = 0
    timeout: float = 30.0
    keys: int = 1000
    zipf: float = 1.1
    read_ratio: float = 0.9
    fan_out: int = 0
    mix: dict[str, float] = field(default_factory=lambda: {"task": 6.0, "cache": 3.0, "agent": 1.0})
    seed: int | None = None
    run_id: str = "run"

    def __post_init__(self) -> None:
        if self.payload_bytes < 0:
            raise ValueError("--payload-bytes cannot be negative.")
        if self.timeout <= 0:
            raise ValueError("--timeout must be above 0 seconds.")
        if self.keys < 1:
            raise ValueError("--keys must be at least 1.")
        if self.zipf < 0:
            raise ValueError("--zipf cannot be negative (0 means uniform keys).")
        if not 0 <= self.read_ratio <= 1:
            raise ValueError("--read-ratio must be between 0 and 1.")
        if self.fan_out < 0:
            raise ValueError("--fan-out cannot be negative (0 means every live agent).")

    def body(self, seq: int) -> dict[str, Any]:
        """The payload of request `seq`: the base payload, a unique marker and the padding.

        The marker keeps payloads distinct, so deterministic capabilities are not answered from
        the workers' memo cache and every task really runs.
        """
        body = {**self.payload, "loadgen": f"{self.run_id}-{seq}"}
        if self.payload_bytes:
            body["pad"] = "x" * self.payload_bytes
        return body


class Scenario(ABC):
    """A kind of traffic: `pick` names the operation of request `seq`, `run` performs it."""

    name: str = "scenario"

    def __init__(self, client: SwarmClient, config: ScenarioConfig, rng: random.Random) -> None:
        self.client = client
        self.config = config
        self.rng = rng

    async def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare before the first request (subscriptions, seed data)."""

    async def teardown(self) -> None:  # noqa: B027 - optional hook
        """Undo what setup and the run left behind."""

    def pick(self, seq: int) -> str:
        """The operation request `seq` performs."""
        return self.name

    @abstractmethod
    async def run(self, kind: str, seq: int) -> None:
        """Perform one operation; raise ServiceError (with its code) when it fails."""

    def extras(self) -> dict[str, Any]:
        """Scenario-specific figures for the report."""
        return {}
