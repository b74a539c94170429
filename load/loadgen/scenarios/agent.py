"""The `agent` scenario: register, heartbeat and leave round trips against the coordinator."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from swarmhub import subjects
from swarmhub.errors import ServiceError
from swarmhub.loadgen.scenarios.base import Scenario
from swarmhub.schemas import (
    Ack,
    AgentRegistration,
    Heartbeat,
    LeaveRequest,
    RegisterReply,
)

# No worker offers this capability, so routers never dispatch a task to a load agent.
LOAD_CAPABILITY = "loadgen-none"


class AgentScenario(Scenario):
    """One operation = register, one heartbeat, leave; agent ids are unique to the run."""

    name = "agent"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefix = f"load-{self.config.run_id}-"
        self.cleaned = 0

    def agent_id(self, seq: int) -> str:
        """The agent id request `seq` registers."""
        return f"{self.prefix}{seq}"

    async def run(self, kind: str, seq: int) -> None:
        """Register, publish a heartbeat, leave."""
        agent_id = self.agent_id(seq)
        bus = self.client.bus
        timeout = self.config.timeout
        await bus.request(
            subjects.swarm_register(agent_id),
            AgentRegistration(
                agent_id=agent_id, capabilities=[LOAD_CAPABILITY], capacity=1, pid=os.getpid()
            ),
            RegisterReply,
            timeout=timeout,
        )
        await bus.publish(
            subjects.swarm_heartbeat(agent_id),
            Heartbeat(
                agent_id=agent_id,
                capabilities=[LOAD_CAPABILITY],
                capacity=1,
                pid=os.getpid(),
                in_flight=0,
            ),
            template=subjects.TEMPLATES["heartbeat"],
        )
        await bus.request(
            subjects.swarm_leave(agent_id), LeaveRequest(agent_id=agent_id), Ack, timeout=timeout
        )

    async def teardown(self) -> None:
        """Remove load agents a late heartbeat re-registered (they would expire anyway)."""
        with contextlib.suppress(ServiceError):
            left = [a.agent_id for a in await self.client.agents()]
            for agent_id in [a for a in left if a.startswith(self.prefix)][:10_000]:
                with contextlib.suppress(ServiceError):
                    await self.client.bus.request(
                        subjects.swarm_leave(agent_id),
                        LeaveRequest(agent_id=agent_id),
                        Ack,
                        timeout=2.0,
                    )
                    self.cleaned += 1

    def extras(self) -> dict[str, Any]:
        """How many agents teardown had to remove."""
        return {"cleaned_up": self.cleaned}
