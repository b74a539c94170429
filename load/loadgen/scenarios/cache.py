"""The `cache` scenario: a get/set mix over Zipf-skewed keys."""

from __future__ import annotations

import bisect
import itertools
import random
from typing import Any

from swarmhub.loadgen.scenarios.base import Scenario

NAMESPACE = "loadgen"


class ZipfKeys:
    """Draws key ranks 0..n-1 with P(rank k) proportional to 1 / (k + 1) ** s."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        if n < 1:
            raise ValueError("A key space needs at least one key.")
        weights = [float((k + 1) ** -s) for k in range(n)]
        self.cumulative = list(itertools.accumulate(weights))
        self.rng = rng

    def probability(self, rank: int) -> float:
        """The chance of drawing `rank`."""
        low = self.cumulative[rank - 1] if rank else 0.0
        return (self.cumulative[rank] - low) / self.cumulative[-1]

    def draw(self) -> int:
        """One key rank."""
        point = self.rng.random() * self.cumulative[-1]
        return min(bisect.bisect_right(self.cumulative, point), len(self.cumulative) - 1)


class CacheScenario(Scenario):
    """One operation = one cache get (`cache-get`) or set (`cache-set`)."""

    name = "cache"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keys = ZipfKeys(self.config.keys, self.config.zipf, self.rng)
        self.value = "v" * max(1, self.config.payload_bytes)
        self.hits = 0
        self.misses = 0

    def key(self) -> str:
        """A key drawn from the skewed distribution."""
        return f"{self.config.run_id}-k{self.keys.draw()}"

    def pick(self, seq: int) -> str:
        """A get with probability read_ratio, else a set."""
        return "cache-get" if self.rng.random() < self.config.read_ratio else "cache-set"

    async def run(self, kind: str, seq: int) -> None:
        """Get or set one key."""
        if kind == "cache-get":
            hit, _ = await self.client.cache_get(self.key(), NAMESPACE)
            if hit:
                self.hits += 1
            else:
                self.misses += 1
        else:
            await self.client.cache_set(self.key(), self.value, NAMESPACE, ttl=600.0)

    def extras(self) -> dict[str, Any]:
        """Hit ratio of the gets."""
        gets = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / gets, 4) if gets else 0.0,
        }
