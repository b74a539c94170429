"""Batch envelopes: grouping by size and count, the wire shape of a batch, one send per turn."""

from __future__ import annotations

import asyncio

from swarmhub import codec
from swarmhub.batching import PerTurn, groups, pack_items
from swarmhub.schemas import RunBatch, Task


def test_groups_respect_the_byte_limit_and_the_count() -> None:
    assert groups([], 100) == []
    assert groups([10, 10, 10], 1000) == [range(0, 3)]
    assert groups([40, 40, 40], 100) == [range(0, 2), range(2, 3)]
    assert groups([10] * 5, 1000, most=2) == [range(0, 2), range(2, 4), range(4, 5)]
    # An item larger than the limit still travels alone (its sender checked it fits a message)
    assert groups([500, 10], 100) == [range(0, 1), range(1, 2)]


def test_packed_items_decode_as_a_run_batch() -> None:
    tasks = [Task(capability="echo", payload={"n": n}) for n in range(3)]
    items = [codec.pack({"task": t.model_dump(), "attempt": 1}) for t in tasks]
    batch = codec.decode(pack_items(items), RunBatch)
    assert [i.task.payload for i in batch.items] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_what_is_added_in_one_turn_is_sent_together_and_later_values_go_next() -> None:
    sent: list[dict[str, list[int]]] = []

    async def send(batch: dict[str, list[int]]) -> None:
        sent.append(batch)

    per_turn: PerTurn[int] = PerTurn(send)
    # Given three values added in one turn, to two keys
    per_turn.add("a", 1)
    per_turn.add("b", 2)
    per_turn.add("a", 3)
    assert sent == []  # nothing goes before the turn ends
    # When the loop turns once
    await asyncio.sleep(0)
    # Then they went out as one hand-over
    assert sent == [{"a": [1, 3], "b": [2]}]
    # And a value added afterwards goes in the next one, which drain waits for
    per_turn.add("a", 4)
    await per_turn.drain()
    assert sent == [{"a": [1, 3], "b": [2]}, {"a": [4]}]
