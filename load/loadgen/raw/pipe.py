"""JSON lines between the bench and the raw pipeline's child processes, over stdin and stdout.

A child reads commands from stdin and writes one JSON object per line to stdout; it exits when
its stdin closes, so it cannot outlive the bench. The bench stops each child by its own PID.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STOP_WAIT_S = 5.0
LINE_LIMIT = 1 << 20


def emit(obj: dict[str, Any]) -> None:
    """Child side: write one JSON line to stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


async def stdin_reader() -> asyncio.StreamReader:
    """Child side: an asyncio reader of this process's stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The JSON object one line holds (None at end of input)."""
    if not line:
        return None
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError(f"Expected a JSON object, got {line[:200]!r}.")
    return value


@dataclass
class Child:
    """Bench side: one child process (`python -m ...`) spoken to in JSON lines."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @classmethod
    async def spawn(cls, name: str, argv: list[str], log_path: Path) -> Child:
        """Start `argv` in a session of its own, its stderr going to `log_path`."""
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                limit=LINE_LIMIT,
            )
        return cls(name, proc, log_path)

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.proc.pid

    def log_tail(self, chars: int = 1500) -> str:
        """The end of the child's stderr log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON line, or RuntimeError (with the log's tail) on timeout or exit."""
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=timeout)
        except TimeoutError:
            raise RuntimeError(
                f"The raw {self.name} said nothing within {timeout:g} s. {self.log_tail()}"
            ) from None
        value = decode_line(line)
        if value is None:
            raise RuntimeError(f"The raw {self.name} exited early. {self.log_tail()}")
        if "error" in value:
            raise RuntimeError(f"The raw {self.name} failed: {value['error']}")
        return value

    async def send(self, obj: dict[str, Any]) -> None:
        """Write one JSON line to the child."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def stop(self) -> None:
        """Close its stdin (it exits), then SIGTERM and SIGKILL this PID if it lingers."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()
        for signal_it in (None, self.proc.terminate, self.proc.kill):
            if self.proc.returncode is not None:
                return
            if signal_it is not None:
                try:
                    signal_it()
                except ProcessLookupError:
                    return
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=STOP_WAIT_S)
            except TimeoutError:
                continue
