"""Create-once writes to a KV bucket: the first writer wins, a store that is away is retried."""

from __future__ import annotations

import asyncio
import time

from nats.aio.msg import Msg

from swarmhub.bus import Bus
from swarmhub.errors import ServiceError

_MARKERS = ("KV-Operation", "Nats-Marker-Reason")
"""Headers of bucket messages that remove a value (delete, purge, expiry) rather than hold one."""


async def create_once(bus: Bus, bucket: str, key: str, data: bytes, retry_for: float = 0.0) -> bool:
    """Write `key` of `bucket` only if it does not exist; False when it does. Other errors are
    retried with backoff for `retry_for` seconds, then raised."""
    delay = 0.1
    deadline = time.monotonic() + retry_for
    while True:
        try:
            return await bus.kv_create(bucket, key, data)
        except ServiceError as exc:
            if not exc.retryable or time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
        except Exception:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)


def holds_value(msg: Msg) -> bool:
    """Whether a (republished) bucket message holds a value, not a delete, purge or expiry."""
    headers = msg.headers
    return not headers or not any(marker in headers for marker in _MARKERS)
