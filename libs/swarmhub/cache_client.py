"""A cache client with an L1 near-cache kept coherent by invalidations, behind a circuit breaker."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from swarmhub import codec, subjects
from swarmhub.breaker import BreakerConfig, CircuitBreaker, CircuitOpenError, telemetry_listener
from swarmhub.bus import Bus
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.schemas import Ack, CacheGetReply, CacheInvalidation, CacheKey, CacheSet

# Only an unreachable or stalled cache trips the breaker; a refused value does not.
CACHE_FAULTS = frozenset({ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE, ErrorCode.INTERNAL})


class CacheClient:
    """get/set against the cache service; never lets a sick cache slow the caller for long."""

    def __init__(
        self,
        bus: Bus,
        *,
        timeout: float = 0.25,
        breaker_wait: float = 2.0,
        l1_entries: int = 1024,
        l1_ttl: float = 30.0,
        name: str = "cache",
    ) -> None:
        self.bus = bus
        self.timeout = timeout
        self.l1_entries = l1_entries
        self.l1_ttl = l1_ttl
        self.breaker = CircuitBreaker(
            name,
            BreakerConfig(
                window_type="count",
                window_size=10,
                minimum_calls=4,
                failure_rate_threshold=50.0,
                slow_call_duration_threshold=max(timeout, 0.001),
                slow_call_rate_threshold=100.0,
                wait_in_open=breaker_wait,
                permitted_calls_in_half_open=2,
                max_wait_in_half_open=breaker_wait * 2,
                failure_predicate=lambda exc: (
                    isinstance(exc, ServiceError) and exc.code in CACHE_FAULTS
                ),
            ),
            listeners=[telemetry_listener],
        )
        self._l1: OrderedDict[tuple[str, str], tuple[float, Any]] = OrderedDict()
        self._sub: Subscription | None = None
        self.bypassed = 0
        self.l1_hits = 0

    async def start(self) -> None:
        """Listen for invalidations so the near-cache never serves a changed value for long."""

        async def on_inval(msg: Msg) -> None:
            try:
                inval = codec.decode(msg.data, CacheInvalidation)
            except ServiceError:
                return
            self._l1.pop((inval.namespace, inval.key), None)

        self._sub = await self.bus.nc.subscribe(subjects.CACHE_INVAL_ALL, cb=on_inval)

    async def stop(self) -> None:
        """Stop listening for invalidations."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """(hit, value); a miss when the cache is down or its breaker is open."""
        local = self._l1.get((namespace, key))
        if local is not None and local[0] > time.monotonic():
            self.l1_hits += 1
            self._l1.move_to_end((namespace, key))
            return True, local[1]
        try:
            reply = await self.breaker.call(
                self.bus.request,
                subjects.CACHE_GET,
                CacheKey(namespace=namespace, key=key),
                CacheGetReply,
                timeout=self.timeout,
            )
        except (CircuitOpenError, ServiceError):
            self.bypassed += 1
            return False, None
        if reply.hit:
            self._remember(namespace, key, reply.value)
        return reply.hit, reply.value

    async def set(self, namespace: str, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store a value; False when the cache could not take it (the caller carries on)."""
        self._l1.pop((namespace, key), None)
        try:
            await self.breaker.call(
                self.bus.request,
                subjects.CACHE_MEMO_SET
                if namespace == subjects.MEMO_NAMESPACE
                else subjects.CACHE_SET,
                CacheSet(namespace=namespace, key=key, value=value, ttl=ttl),
                Ack,
                timeout=self.timeout,
            )
        except (CircuitOpenError, ServiceError):
            self.bypassed += 1
            return False
        return True

    def _remember(self, namespace: str, key: str, value: Any) -> None:
        self._l1[(namespace, key)] = (time.monotonic() + self.l1_ttl, value)
        self._l1.move_to_end((namespace, key))
        while len(self._l1) > self.l1_entries:
            self._l1.popitem(last=False)
