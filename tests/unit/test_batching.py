"""Batch envelopes: grouping by size and count, and the wire shape of a batch."""

from __future__ import annotations

from swarmhub import codec
from swarmhub.batching import groups, pack_items
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
