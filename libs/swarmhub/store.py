"""Create-once writes to a KV bucket: the first writer wins, a store that is away is retried."""

from __future__ import annotations

import asyncio
import time

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue


async def create_once(kv: KeyValue, key: str, data: bytes, retry_for: float = 0.0) -> bool:
    """Write `key` only if it does not exist; False when it does. Other errors are retried
    with backoff for `retry_for` seconds, then raised."""
    delay = 0.1
    deadline = time.monotonic() + retry_for
    while True:
        try:
            await kv.create(key, data)
            return True
        except KeyWrongLastSequenceError:
            return False
        except Exception:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
