"""The bounded LRU store with TTL."""

from __future__ import annotations

import pytest

from swarmhub.cache_service.store import BoundedStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_get_set_delete() -> None:
    store = BoundedStore(max_entries=10, max_bytes=10_000, default_ttl=60)
    assert store.get("ns", "k") == (False, None)
    store.set("ns", "k", {"v": 1})
    assert store.get("ns", "k") == (True, {"v": 1})
    assert store.delete("ns", "k") is True
    assert store.delete("ns", "k") is False
    assert store.counters.hits == 1 and store.counters.misses == 1


def test_namespaces_are_separate() -> None:
    store = BoundedStore(max_entries=10, max_bytes=10_000, default_ttl=60)
    store.set("a", "k", 1)
    store.set("b", "k", 2)
    assert store.get("a", "k") == (True, 1)
    assert store.get("b", "k") == (True, 2)


def test_ttl_expires_entries() -> None:
    clock = FakeClock()
    store = BoundedStore(max_entries=10, max_bytes=10_000, default_ttl=60, clock=clock)
    store.set("ns", "short", 1, ttl=1)
    store.set("ns", "long", 2)
    clock.now = 2
    assert store.get("ns", "short") == (False, None)
    assert store.get("ns", "long") == (True, 2)
    assert store.counters.expirations == 1
    assert len(store) == 1


def test_entry_bound_evicts_least_recently_used() -> None:
    store = BoundedStore(max_entries=2, max_bytes=10_000, default_ttl=60)
    store.set("ns", "a", 1)
    store.set("ns", "b", 2)
    store.get("ns", "a")
    store.set("ns", "c", 3)
    assert store.get("ns", "b") == (False, None)
    assert store.get("ns", "a") == (True, 1)
    assert store.counters.evictions == 1


def test_byte_bound_holds() -> None:
    store = BoundedStore(max_entries=1000, max_bytes=2000, default_ttl=60)
    for i in range(50):
        store.set("ns", f"k{i}", "x" * 100)
        assert store.bytes <= 2000
    assert store.counters.evictions > 0


def test_value_larger_than_cache_is_refused() -> None:
    store = BoundedStore(max_entries=10, max_bytes=1024, default_ttl=60)
    with pytest.raises(ValueError, match="larger than the whole cache"):
        store.set("ns", "k", "x" * 5000)
