"""Connecting to the cluster with a bound on the whole attempt."""

from __future__ import annotations

import asyncio

from swarmhub.client import SwarmClient
from swarmhub.config import redact_url
from swarmhub.errors import ErrorCode, ServiceError

CONNECT_TIMEOUT = 10.0


async def connect(url: str, name: str, timeout: float | None = None) -> SwarmClient:
    """A client connected to `url`, or ServiceError(UNAVAILABLE) within `timeout` seconds.

    nats-py can retry an unreachable server forever despite allow_reconnect=False
    (nats-io/nats.py#645), so the whole attempt is bounded here.
    """
    timeout = timeout or CONNECT_TIMEOUT
    try:
        return await asyncio.wait_for(
            SwarmClient.connect(url, name=name, role="operator"), timeout=timeout
        )
    except TimeoutError:
        raise ServiceError(
            ErrorCode.UNAVAILABLE,
            f"Cannot connect to NATS at {redact_url(url)} within {timeout:g} s. "
            "Is the cluster running (`swarmhub up`), and is --url right?",
        ) from None
