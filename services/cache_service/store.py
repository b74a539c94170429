"""An LRU store bounded by entry count and bytes, with per-entry TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarmhub import codec


@dataclass
class StoreCounters:
    """What happened to the store since it started."""

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    evictions: int = 0
    expirations: int = 0


@dataclass
class _Entry:
    value: Any
    size: int
    expires_at: float


@dataclass
class BoundedStore:
    """LRU by recency of use; expired entries count as misses and are dropped on access."""

    max_entries: int
    max_bytes: int
    default_ttl: float
    clock: Callable[[], float] = time.monotonic
    counters: StoreCounters = field(default_factory=StoreCounters)

    def __post_init__(self) -> None:
        self._data: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """(hit, value) for one key."""
        entry = self._data.get((namespace, key))
        if entry is None:
            self.counters.misses += 1
            return False, None
        if entry.expires_at <= self.clock():
            self._drop((namespace, key))
            self.counters.expirations += 1
            self.counters.misses += 1
            return False, None
        self._data.move_to_end((namespace, key))
        self.counters.hits += 1
        return True, entry.value

    def set(self, namespace: str, key: str, value: Any, ttl: float | None = None) -> None:
        """Store a value; evicts least recently used entries to stay within bounds."""
        size = len(codec.pack(value)) + len(key) + len(namespace)
        if size > self.max_bytes:
            raise ValueError(
                f"Value of {size} bytes is larger than the whole cache ({self.max_bytes} bytes)."
            )
        self._drop((namespace, key))
        self._data[(namespace, key)] = _Entry(value, size, self.clock() + (ttl or self.default_ttl))
        self.bytes += size
        self.counters.sets += 1
        while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._drop(oldest)
            self.counters.evictions += 1

    def delete(self, namespace: str, key: str) -> bool:
        """Remove one key; True when it was there."""
        found = self._drop((namespace, key))
        if found:
            self.counters.deletes += 1
        return found

    def _drop(self, address: tuple[str, str]) -> bool:
        entry = self._data.pop(address, None)
        if entry is None:
            return False
        self.bytes -= entry.size
        return True
