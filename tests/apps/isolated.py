"""An app whose sync capabilities run isolated, each call in a child process of its own."""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from pydantic import BaseModel

from swarmhub import App

app = App("isolated", include_builtins=True)


class Number(BaseModel):
    """The typed payload of `square`."""

    n: int


def _say_pid(payload: dict[str, object]) -> None:
    """Write this process's PID to `pid_file`, so a test can watch the child."""
    path = Path(str(payload["pid_file"]))
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    path.with_suffix(".tmp").replace(path)


@app.capability(isolate=True)
def square(number: Number) -> dict[str, int]:
    """A plain isolated function: its typed payload is validated in the child."""
    return {"square": number.n * number.n, "pid": os.getpid()}


@app.capability(isolate=True, max_attempts=1)
def spin(payload: dict[str, object]) -> None:
    """Burns CPU forever: only killing its process stops it."""
    _say_pid(payload)
    while True:
        pass


@app.capability(isolate=True, max_attempts=1)
def exit_hard(payload: dict[str, object]) -> None:
    """Ends its process at once with exit code 3, skipping every handler."""
    os._exit(3)


@app.capability(isolate=True, max_attempts=1)
def segfault(payload: dict[str, object]) -> None:
    """Reads address 0: the process dies of SIGSEGV."""
    ctypes.string_at(0)


@app.capability(isolate=True, max_attempts=1)
def huge(payload: dict[str, object]) -> str:
    """Returns `size` bytes of text, more than a reply may carry when asked."""
    return "x" * int(str(payload["size"]))


@app.capability(isolate=True, concurrency=1)
def hold(payload: dict[str, object]) -> dict[str, int]:
    """Says its PID, then waits until the file `release` exists."""
    _say_pid(payload)
    release = Path(str(payload["release"]))
    while not release.exists():
        time.sleep(0.01)
    return {"pid": os.getpid()}
