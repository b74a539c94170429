"""Provisioning against a real nats-server: a results bucket from before republishing gains it."""

from __future__ import annotations

import nats
from nats.js.api import KeyValueConfig, StorageType

from swarmhub import provision, subjects


async def test_a_results_bucket_made_before_republishing_is_given_it(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stream = subjects.kv_stream(subjects.RESULTS_BUCKET)
        # Given a results bucket as an older hub made it, holding a result
        await js.create_key_value(
            config=KeyValueConfig(bucket=subjects.RESULTS_BUCKET, storage=StorageType.FILE)
        )
        await (await js.key_value(subjects.RESULTS_BUCKET)).put("old-task", b"kept")
        assert (await js.stream_info(stream)).config.republish is None
        # When a router of this version provisions
        await provision.ensure_all(js)
        # Then the bucket republishes stored results as result events, and kept what it held
        republish = (await js.stream_info(stream)).config.republish
        assert republish is not None
        assert (republish.src, republish.dest) == subjects.RESULT_REPUBLISH
        entry = await (await js.key_value(subjects.RESULTS_BUCKET)).get("old-task")
        assert entry.value == b"kept"
        # and provisioning again changes nothing
        await provision.ensure_all(js)
        assert (await js.stream_info(stream)).config.republish == republish
    finally:
        await nc.close()
