"""The cache service: get/set/del/stats over request/reply, invalidations on every change."""

from __future__ import annotations

from typing import Any, ClassVar

from swarmhub import metrics, subjects
from swarmhub.cache_service.store import BoundedStore
from swarmhub.config import CacheSettings
from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.runtime import Service
from swarmhub.schemas import (
    Ack,
    CacheDelReply,
    CacheGetReply,
    CacheInvalidation,
    CacheKey,
    CacheSet,
    CacheStats,
    Empty,
)


class CacheService(Service):
    """A shared cache bounded in entries and bytes, with TTLs and namespaces."""

    name: ClassVar[str] = "cache"
    description: ClassVar[str] = "Bounded TTL key-value cache with invalidation events."

    def __init__(self, settings: CacheSettings | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings or CacheSettings()
        self.store = BoundedStore(
            max_entries=self.settings.cache_max_entries,
            max_bytes=self.settings.cache_max_bytes,
            default_ttl=self.settings.cache_default_ttl,
        )
        self.add_endpoint("get", subjects.CACHE_GET, CacheKey, self.get)
        self.add_endpoint("set", subjects.CACHE_SET, CacheSet, self.set)
        self.add_endpoint("memo_set", subjects.CACHE_MEMO_SET, CacheSet, self.memo_set)
        self.add_endpoint("del", subjects.CACHE_DEL, CacheKey, self.delete)
        self.add_endpoint("stats", subjects.CACHE_STATS, Empty, self.stats)

    def stats_data(self) -> dict[str, Any]:
        """Cache counters shown in $SRV.STATS."""
        return self._stats().model_dump()

    def _gauges(self) -> None:
        metrics.CACHE_ENTRIES.set(len(self.store))
        metrics.CACHE_BYTES.set(self.store.bytes)

    async def get(self, req: CacheKey) -> CacheGetReply:
        """Look one key up."""
        hit, value = self.store.get(req.namespace, req.key)
        metrics.child(metrics.CACHE_REQUESTS, "get", "hit" if hit else "miss").inc()
        self._gauges()
        return CacheGetReply(hit=hit, value=value)

    async def set(self, req: CacheSet) -> Ack:
        """Store one key and tell every near-cache to drop its copy (not in the memo namespace)."""
        _refuse_memo(req.namespace, "written")
        return await self._store(req)

    async def memo_set(self, req: CacheSet) -> Ack:
        """Store a memoized output (only workers may publish here: see swarmhub.roles)."""
        if req.namespace != subjects.MEMO_NAMESPACE:
            raise ServiceError(
                ErrorCode.BAD_REQUEST,
                f"{subjects.CACHE_MEMO_SET} writes only the {subjects.MEMO_NAMESPACE!r} namespace.",
            )
        return await self._store(req)

    async def _store(self, req: CacheSet) -> Ack:
        evictions = self.store.counters.evictions
        try:
            self.store.set(req.namespace, req.key, req.value, req.ttl)
        except ValueError as exc:
            metrics.CACHE_REQUESTS.labels("set", "error").inc()
            raise ServiceError(ErrorCode.TOO_LARGE, str(exc)) from None
        metrics.CACHE_EVICTIONS.inc(self.store.counters.evictions - evictions)
        metrics.child(metrics.CACHE_REQUESTS, "set", "ok").inc()
        self._gauges()
        await self._invalidate(req.namespace, req.key)
        return Ack()

    async def delete(self, req: CacheKey) -> CacheDelReply:
        """Remove one key and broadcast the invalidation (not in the memo namespace)."""
        _refuse_memo(req.namespace, "deleted")
        deleted = self.store.delete(req.namespace, req.key)
        metrics.CACHE_REQUESTS.labels("del", "ok").inc()
        self._gauges()
        await self._invalidate(req.namespace, req.key)
        return CacheDelReply(deleted=deleted)

    async def stats(self, _: Empty) -> CacheStats:
        """Counters and bounds."""
        return self._stats()

    def _stats(self) -> CacheStats:
        c = self.store.counters
        return CacheStats(
            entries=len(self.store),
            bytes=self.store.bytes,
            hits=c.hits,
            misses=c.misses,
            sets=c.sets,
            deletes=c.deletes,
            evictions=c.evictions,
            expirations=c.expirations,
            max_entries=self.store.max_entries,
            max_bytes=self.store.max_bytes,
        )

    async def _invalidate(self, namespace: str, key: str) -> None:
        await self.bus.publish(
            subjects.cache_inval(namespace),
            CacheInvalidation(namespace=namespace, key=key, origin=self.identity.instance_id),
            template=subjects.TEMPLATES["inval"],
        )


def _refuse_memo(namespace: str, done: str) -> None:
    """Memoized outputs are trusted as if a capability returned them: clients may not touch them."""
    if namespace == subjects.MEMO_NAMESPACE:
        raise ServiceError(
            ErrorCode.BAD_REQUEST,
            f"Namespace {namespace!r} holds memoized capability outputs; it is {done} only by "
            "agent-workers. Use another namespace.",
        )
