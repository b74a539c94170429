"""The `swarm` scenario: one durable swarm job (an ensemble over live agents), gathered."""

from __future__ import annotations

from typing import Any

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.loadgen.scenarios.base import Scenario
from swarmhub.schemas import SwarmJob


class SwarmScenario(Scenario):
    """One operation = one fan-out/fan-in job; a `partial` job counts as done but is tallied."""

    name = "swarm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.partial = 0
        self.agents_total = 0
        self.jobs = 0

    async def run(self, kind: str, seq: int) -> None:
        """Run one job and check its status."""
        result = await self.client.run_job(
            SwarmJob(
                capability=self.config.capability,
                payload=self.config.body(seq),
                ensemble=self.config.fan_out,
                attempt_timeout=self.config.timeout,
            ),
            timeout=self.config.timeout,
        )
        self.jobs += 1
        self.agents_total += len(result.agents)
        if result.status in ("failed", "timed_out", "cancelled"):
            raise ServiceError(
                result.error.code if result.error else ErrorCode.INTERNAL,
                result.error.message if result.error else f"Swarm job {result.job_id} failed.",
            )
        if result.status == "partial":
            self.partial += 1

    def extras(self) -> dict[str, Any]:
        """Partial jobs and the mean number of agents a job reached."""
        return {
            "partial": self.partial,
            "agents_per_job": round(self.agents_total / self.jobs, 2) if self.jobs else 0.0,
        }
