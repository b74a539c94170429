"""Names and message shapes of the raw baseline pipeline (a yardstick, not SwarmHub's protocol).

The raw pipeline runs on a nats-server of its own and is no part of SwarmHub, so its stream,
consumer and subjects are not in `swarmhub.subjects`. They are spelled here and nowhere else.
"""

from __future__ import annotations

from typing import Any

import msgpack
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

# The raw pipeline's own names: the one place they are defined (not SwarmHub's protocol).
STREAM = "RAW_BASELINE_TASKS"
TASK_SUBJECT = "rawbaseline.task"
RESULT_PREFIX = "rawbaseline.result"
RESULT_ALL = f"{RESULT_PREFIX}.*"
CONSUMER = "raw-baseline-consumer"

FETCH_BATCH = 256
ACK_WAIT_S = 30.0
DUPLICATE_WINDOW_S = 120.0  # the same de-duplication window as SwarmHub's task stream
MSG_ID_HEADER = "Nats-Msg-Id"
CAPABILITY = "echo"


def result_subject(task_id: str) -> str:
    """Where the consumer publishes the result of one task."""
    return f"{RESULT_PREFIX}.{task_id}"


def task_id_of(subject: str) -> str:
    """The task id a result subject carries."""
    return subject[len(RESULT_PREFIX) + 1 :]


def stream_config() -> StreamConfig:
    """A file-backed work-queue stream with de-duplication, like SwarmHub's task stream."""
    return StreamConfig(
        name=STREAM,
        subjects=[TASK_SUBJECT],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        discard=DiscardPolicy.NEW,
        max_msgs=1_000_000,
    )


def consumer_config() -> ConsumerConfig:
    """The durable pull consumer the consumer process fetches from."""
    return ConsumerConfig(
        durable_name=CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ACK_WAIT_S,
        max_ack_pending=20_000,
    )


def pack(obj: Any) -> bytes:
    """msgpack bytes of a plain value."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """The plain value msgpack bytes hold."""
    return msgpack.unpackb(data, raw=False)


def pad_to(message: dict[str, Any], size: int) -> bytes:
    """`message` as msgpack, with a `pad` string making it `size` bytes (within a byte or two).

    A message already `size` bytes or longer is packed as it is.
    """
    plain = pack(message)
    if len(plain) >= size:
        return plain
    fill = max(0, size - len(pack({**message, "pad": ""})))
    while True:
        packed = pack({**message, "pad": "x" * fill})
        if len(packed) <= size or fill == 0:
            return packed
        fill -= 1


def task_message(task_id: str, body: dict[str, Any], size: int) -> bytes:
    """One task: its id, the capability and the payload, padded to `size` bytes."""
    return pad_to({"id": task_id, "capability": CAPABILITY, "payload": body}, size)


def result_message(task: dict[str, Any]) -> bytes:
    """The result of running `echo` on a task: its payload back."""
    return pack({"task_id": task.get("id"), "status": "succeeded", "output": task.get("payload")})
