"""The raw pipeline's consumer process: fetch(256) from a durable pull consumer, answer, ack.

`python -m swarmhub.loadgen.raw.consumer --url URL` creates the work-queue stream and the
durable pull consumer, says `{"ready": true}` on stdout, then for every fetched task publishes
its result (a core NATS publish) and acks it. It stops on SIGTERM, when its stdin closes, or
after `--max-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence

import nats

from swarmhub.loadgen.raw import protocol
from swarmhub.loadgen.raw.pipe import emit, stdin_reader

CONNECT_TIMEOUT_S = 10.0
FETCH_WAIT_S = 0.5


async def serve(url: str, max_seconds: float) -> int:
    """Serve tasks until stopped; returns how many were answered."""
    nc = await asyncio.wait_for(
        nats.connect(url, name="raw-baseline-consumer", allow_reconnect=False),
        timeout=CONNECT_TIMEOUT_S,
    )
    try:
        js = nc.jetstream()
        await js.add_stream(config=protocol.stream_config())
        sub = await js.pull_subscribe(
            protocol.TASK_SUBJECT,
            durable=protocol.CONSUMER,
            stream=protocol.STREAM,
            config=protocol.consumer_config(),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        reader = await stdin_reader()

        async def until_stdin_closes() -> None:
            await reader.read()
            stop.set()

        watcher = asyncio.create_task(until_stdin_closes())
        emit({"ready": True, "pid": os.getpid()})
        deadline = time.monotonic() + max_seconds
        answered = 0
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                batch = await sub.fetch(protocol.FETCH_BATCH, timeout=FETCH_WAIT_S)
            except TimeoutError:
                continue
            for msg in batch:
                try:
                    task = protocol.unpack(msg.data)
                    await nc.publish(
                        protocol.result_subject(str(task["id"])), protocol.result_message(task)
                    )
                except (ValueError, KeyError, TypeError):
                    pass  # not a task of ours: ack it away all the same
                await msg.ack()
                answered += 1
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        return answered
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m swarmhub.loadgen.raw.consumer")
    parser.add_argument("--url", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.url, args.max_seconds))
    except Exception as exc:
        emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
