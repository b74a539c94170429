"""Creates or updates the streams and KV buckets SwarmHub needs; safe from every process."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RePublish,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from swarmhub import subjects
from swarmhub.config import StorageSettings

DUPLICATE_WINDOW_S = 120.0
DEAD_LETTER_MAX_AGE_S = 7 * 24 * 3600.0


def task_stream_config(replicas: int = 1, storage: StorageSettings | None = None) -> StreamConfig:
    """Work-queue stream of submitted tasks, deduplicated by Nats-Msg-Id.

    When full it refuses new submissions (the client gets an error), never drops a stored task.
    It captures exactly the subjects of the priority lanes (with those of before tenants), each
    lane consumed by its own durable consumer, so a task on any other submit subject is refused
    at publish instead of being stored where no consumer would ever see it. An existing stream
    is updated in place to these subjects.
    """
    storage = storage or StorageSettings()
    return StreamConfig(
        name=subjects.TASK_STREAM,
        subjects=[name for lane in subjects.LANES for name in subjects.lane_filters(lane)],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW_S,
        discard=DiscardPolicy.NEW,
        max_msgs=1_000_000,
        max_bytes=storage.tasks_max_bytes,
        num_replicas=replicas,
    )


def dead_stream_config(replicas: int = 1, storage: StorageSettings | None = None) -> StreamConfig:
    """Limits stream of dead letters, kept for a week; when full the oldest letters go first."""
    storage = storage or StorageSettings()
    return StreamConfig(
        name=subjects.DEAD_STREAM,
        subjects=[subjects.TASK_DEAD_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=DEAD_LETTER_MAX_AGE_S,
        max_bytes=storage.dead_max_bytes,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create a stream, or update it in place when it exists with other settings."""
    try:
        await js.stream_info(config.name or "")
    except NotFoundError:
        try:
            await js.add_stream(config=config)
            return
        except BadRequestError:
            pass  # another process created it first
    await js.update_stream(config=config)


async def ensure_kv(
    js: JetStreamContext,
    bucket: str,
    *,
    ttl: float | None,
    history: int = 1,
    replicas: int = 1,
    max_bytes: int = -1,
    direct: bool = False,
    republish: RePublish | None = None,
) -> KeyValue:
    """Bind to a KV bucket, creating it when missing.

    With `direct`, keys are read by direct gets (`$JS.API.DIRECT.GET.<stream>.<subject>`), so
    permissions can allow reading some keys and not others; with `republish`, the stream sends
    each stored value on again (see subjects.RESULT_REPUBLISH). A bucket made before either is
    updated in place.
    """
    try:
        kv = await js.key_value(bucket)
    except NotFoundError:
        try:
            kv = await js.create_key_value(
                config=KeyValueConfig(
                    bucket=bucket,
                    history=history,
                    ttl=ttl,
                    storage=StorageType.FILE,
                    replicas=replicas,
                    max_bytes=max_bytes,
                    direct=direct or None,
                    republish=republish,
                )
            )
        except BadRequestError:
            kv = await js.key_value(bucket)
    if direct or republish is not None:
        config = (await js.stream_info(subjects.kv_stream(bucket))).config
        wanted = replace(
            config,
            allow_direct=config.allow_direct or direct,
            republish=republish or config.republish,
        )
        if (
            _differs(config.republish, wanted.republish)
            or wanted.allow_direct != config.allow_direct
        ):
            await js.update_stream(config=wanted)
            kv = await js.key_value(bucket)
    return kv


def _differs(now: RePublish | None, wanted: RePublish | None) -> bool:
    """Whether two republish settings differ (the server echoes `headers_only` as None)."""
    if now is None or wanted is None:
        return now is not wanted
    return (now.src, now.dest, bool(now.headers_only)) != (
        wanted.src,
        wanted.dest,
        bool(wanted.headers_only),
    )


async def ensure_all(
    js: JetStreamContext,
    *,
    results_ttl: float = 24 * 3600.0,
    replicas: int = 1,
    attempts: int = 10,
    storage: StorageSettings | None = None,
) -> None:
    """Provision every stream and bucket, retrying while a cluster is still electing leaders."""
    storage = storage or StorageSettings()
    for attempt in range(1, attempts + 1):
        try:
            await _ensure_all(js, results_ttl=results_ttl, replicas=replicas, storage=storage)
            return
        except (NatsTimeoutError, ServiceUnavailableError):
            if attempt == attempts:
                raise
            await asyncio.sleep(min(2.0, 0.2 * attempt))


async def _ensure_all(
    js: JetStreamContext, *, results_ttl: float, replicas: int, storage: StorageSettings
) -> None:
    await ensure_stream(js, task_stream_config(replicas, storage))
    await ensure_stream(js, dead_stream_config(replicas, storage))
    await ensure_kv(
        js,
        subjects.RESULTS_BUCKET,
        ttl=results_ttl,
        replicas=replicas,
        max_bytes=storage.results_max_bytes,
        direct=True,
        republish=RePublish(*subjects.RESULT_REPUBLISH, headers_only=False),
    )
    await ensure_kv(
        js, subjects.AGENTS_BUCKET, ttl=None, replicas=replicas, max_bytes=storage.agents_max_bytes
    )
