"""A user's app as tests load it: sync, async, typed, limited and failing capabilities."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from swarmhub import App, NonRetryableError

app = App("sample")
calls: dict[str, int] = {}


class Greeting(BaseModel):
    """The typed payload of `greet`."""

    name: str
    excited: bool = False


@app.capability()
def upper(payload: dict[str, object]) -> dict[str, object]:
    """Sync: runs in a worker thread, so it reports that thread's name."""
    return {"text": str(payload.get("text", "")).upper(), "thread": threading.current_thread().name}


@app.capability("greet")
async def greeting(who: Greeting) -> Greeting:
    """Async with a typed payload, returning a model."""
    return Greeting(name=f"hello {who.name}" + ("!" if who.excited else ""), excited=who.excited)


@app.capability(max_attempts=1)
def flaky(payload: dict[str, object]) -> None:
    """Fails every time; allowed one attempt whatever the task asks."""
    raise RuntimeError("flaky failed on purpose")


@app.capability(timeout=0.3)
async def slow(payload: dict[str, object]) -> dict[str, bool]:
    """Runs past its own 0.3 s timeout."""
    await asyncio.sleep(5)
    return {"done": True}


@app.capability()
def blocking(payload: dict[str, object]) -> dict[str, float]:
    """Sync and slow: blocks its thread, not the worker's event loop."""
    seconds = float(payload.get("seconds", 0.2))  # type: ignore[arg-type]
    time.sleep(seconds)
    return {"slept": seconds}


@app.capability()
def refuse(payload: dict[str, object]) -> None:
    """Fails for good at once."""
    raise NonRetryableError("refused: this input can never work")


@app.capability()
def odd(payload: dict[str, object]) -> set[int]:
    """Returns a value msgpack cannot carry."""
    return {1, 2}


@app.capability()
def touch(payload: dict[str, object]) -> dict[str, str]:
    """Creates the file `path`: a side effect a test can look for."""
    path = Path(str(payload["path"]))
    path.touch()
    return {"touched": str(path)}


@app.capability()
async def hang(payload: dict[str, object]) -> None:
    """Waits a minute: stopped only by a cancel (or its timeout)."""
    await asyncio.sleep(60)


not_an_app = {"capabilities": []}
empty = App("empty")
