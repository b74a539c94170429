"""Names and versions shared by the load generator's modules (kept light to import)."""

from __future__ import annotations

REPORT_VERSION = 1
SCENARIO_NAMES = ("task", "agent", "cache", "swarm", "mixed")
