"""Run a function in a child process of its own, killed by PID when the call is given up.

Each call forks a fresh child from multiprocessing's forkserver (a clean interpreter started
once per process with the modules to preload, so a child holds no NATS connection, socket or
thread of the worker). The request goes in as bytes, the answer comes back as bytes over a pipe
read without blocking the event loop; cancelling the call (an attempt's timeout does) sends
SIGTERM to the child's process group, then SIGKILL after `KILL_GRACE`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

KILL_GRACE = 0.5
"""Seconds a child has to end on SIGTERM before it gets SIGKILL."""
MAX_ANSWER = 64 * 1024 * 1024
"""Most bytes read from a child: NATS's own ceiling on max_payload, so no reply can be bigger."""
_PR_SET_PDEATHSIG = 1
_CONTEXT = multiprocessing.get_context("forkserver")
_preloaded: set[str] = {"__main__", __name__}  # multiprocessing's default, and this module

Entry = Callable[[bytes], bytes]
"""A module-level function a child runs on the request to produce its answer."""


class ChildDied(Exception):
    """A child ended without an answer; the message says how (exit code or signal)."""


class AnswerTooLarge(Exception):
    """A child answered with more than `MAX_ANSWER` bytes."""


def preload(modules: Iterable[str]) -> None:
    """Have the forkserver import `modules` once, so children start without importing them.

    Only modules named before the first child starts count (the forkserver starts then).
    """
    _preloaded.update(modules, _main_imports())
    _CONTEXT.set_forkserver_preload(sorted(_preloaded))


def _main_imports() -> set[str]:
    """What the main module imports: each child runs it again (multiprocessing's way of
    restoring `__main__`), which costs little only when the forkserver has loaded those."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name:  # run with -m: multiprocessing re-runs it by name, unless it is a __main__
        return set() if name.rpartition(".")[2] == "__main__" else {name}
    path = getattr(main, "__file__", None)
    try:
        tree = ast.parse(Path(path).read_bytes()) if path else None
    except (OSError, SyntaxError, ValueError):
        tree = None
    names: set[str] = set()
    for node in tree.body if tree else []:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


class ChildProcesses:
    """Runs calls each in a new child process and kills the children of calls given up."""

    def __init__(self) -> None:
        self._children: set[BaseProcess] = set()
        self._closed = False
        self._entries: set[str] = set()  # modules of the entries called, named for preloading
        # Starting a child waits on the forkserver: kept off the event loop, and off the agent's
        # capability threads, which runaway sync functions may hold.
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="isolated-start")

    async def warm_up(self) -> None:
        """Start the forkserver and one child now, so the first call waits for no preloading."""
        await self.call(_ready, b"")

    def pids(self) -> list[int]:
        """PIDs of the children running now."""
        return [p.pid for p in self._children if p.pid is not None]

    async def call(self, entry: Entry, request: bytes) -> bytes:
        """`entry(request)` in a new child process; raises ChildDied if it ends without answer.

        Cancelling the call kills the child (SIGTERM, then SIGKILL after KILL_GRACE) before the
        cancellation goes on; so does any other way the call ends while the child runs.
        """
        if self._closed:
            raise RuntimeError("These child processes were closed; no call can start.")
        if entry.__module__ not in self._entries:
            self._entries.add(entry.__module__)
            preload(self._entries)
        reader, writer = _CONTEXT.Pipe(duplex=False)
        process = _CONTEXT.Process(
            target=_child_main, args=(entry, request, writer), name="swarmhub-isolated", daemon=True
        )
        self._children.add(process)
        starting = asyncio.get_running_loop().run_in_executor(self._starter, process.start)
        try:
            # Shielded: a child whose start was under way when the call was cancelled is
            # stopped below like any other, not left running.
            await asyncio.shield(starting)
            writer.close()
            answer = await _read_to_end(reader)
            await _exited(process)
            if process.exitcode != 0 or not answer:
                raise ChildDied(_how_it_ended(process.exitcode))
            return answer
        finally:
            writer.close()
            reader.close()
            if starting.done():
                await self._stop(process)
            else:
                starting.add_done_callback(lambda _: self._kill(process))

    async def _stop(self, process: BaseProcess) -> None:
        """Stop a running child by its PID: SIGTERM, SIGKILL after KILL_GRACE, then reap it."""
        if process.pid is None or process.exitcode is not None:  # never started, or ended
            self._children.discard(process)
            return
        try:
            _signal_group(process, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_exited(process), KILL_GRACE)
        finally:
            # The child if it outlived SIGTERM, and whatever it started in its group.
            self._kill(process)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_exited(process), KILL_GRACE)

    def _kill(self, process: BaseProcess) -> None:
        """SIGKILL a child's process group by its PID, at once."""
        if process.pid is not None:
            _signal_group(process, signal.SIGKILL)
        self._children.discard(process)

    async def close(self) -> None:
        """Kill every child still running, by PID; no call can start afterwards."""
        self._closed = True
        # Starts under way finish first, so that none of their children escapes.
        await asyncio.get_running_loop().run_in_executor(None, self._starter.shutdown)
        for process in list(self._children):
            self._kill(process)


async def _exited(process: BaseProcess) -> None:
    """Wait until the child has ended (its sentinel becomes readable)."""
    if process.exitcode is not None:
        return
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(process.sentinel, readable)
    try:
        await ended
    finally:
        loop.remove_reader(process.sentinel)


async def _read_to_end(reader: Connection) -> bytes:
    """All bytes a child writes before it closes its end, read as they come."""
    loop = asyncio.get_running_loop()
    fd = reader.fileno()
    os.set_blocking(fd, False)
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    data = bytearray()
    try:
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                readable.clear()
                await readable.wait()
                continue
            if not chunk:
                return bytes(data)
            data += chunk
            if len(data) > MAX_ANSWER:
                raise AnswerTooLarge(f"answered more than {MAX_ANSWER} bytes")
    finally:
        loop.remove_reader(fd)


def _how_it_ended(exitcode: int | None) -> str:
    """`died with exit code 3`, `was killed by signal 11 (SIGSEGV)`."""
    if exitcode is not None and exitcode < 0:
        try:
            name = f" ({signal.Signals(-exitcode).name})"
        except ValueError:
            name = ""
        return f"was killed by signal {-exitcode}{name}"
    if exitcode == 0:
        return "exited without an answer"
    return f"died with exit code {exitcode}"


def _signal_group(process: BaseProcess, sig: signal.Signals) -> None:
    """Signal the child's process group (the child leads it), or the child before it does."""
    assert process.pid is not None
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        # Only a child not yet reported ended may be signalled alone: its PID is still its own.
        if process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, sig)
    except PermissionError:
        pass


def _ready(request: bytes) -> bytes:
    """The warm-up's entry: answer at once."""
    return b"ready"


def _child_main(entry: Entry, request: bytes, writer: Connection) -> None:
    """In the child: lead a process group, die with the forkserver, answer, exit at once."""
    os.setpgid(0, 0)
    if sys.platform == "linux":
        # The forkserver ends once no process holds its "alive" pipe; multiprocessing gives
        # every child a copy. Without it here, the forkserver ends with the worker (even on
        # SIGKILL), and the death signal then ends this child too.
        server = getattr(forkserver, "_forkserver", None)
        if (alive := getattr(server, "_forkserver_alive_fd", None)) is not None:
            os.close(alive)
            server._forkserver_alive_fd = None  # type: ignore[union-attr]
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    answer = entry(request)
    view = memoryview(answer)
    fd = writer.fileno()
    while view:
        view = view[os.write(fd, view) :]
    # No waiting for threads the function left running: its answer is all that counts.
    os._exit(0)
