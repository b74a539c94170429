"""Reading the agent registry (KV bucket `hub_agents`)."""

from __future__ import annotations

from collections.abc import Iterable

from nats.js.kv import KeyValue

from swarmhub import codec
from swarmhub.schemas import AgentRecord


def count_alive(records: Iterable[AgentRecord]) -> int:
    """How many of `records` take work: up, not draining."""
    return sum(1 for record in records if record.state == "up")


async def read_agents(kv: KeyValue) -> list[AgentRecord]:
    """Every readable agent record in the registry, sorted by id (unreadable ones skipped)."""
    try:
        keys = await kv.keys()
    except Exception:  # NoKeysError when empty; an unreachable bucket reads as empty too
        return []
    records = []
    for key in keys:
        try:
            entry = await kv.get(key)
            records.append(codec.decode(entry.value or b"", AgentRecord))
        except Exception:  # deleted meanwhile, or not a record
            continue
    return sorted(records, key=lambda r: r.agent_id)
