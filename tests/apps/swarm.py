"""A user's app for swarm job tests: agents that vote, one of which may lie, and a reducer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from swarmhub import App

app = App("swarm-test", include_builtins=True)
_liar: dict[str, bool] = {}


def _is_liar(claim: str) -> bool:
    """The first process to claim the file `claim` is the liar, for as long as it lives."""
    if claim not in _liar:
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            _liar[claim] = True
        except FileExistsError:
            _liar[claim] = False
    return _liar[claim]


@app.capability()
async def answer(payload: dict[str, object]) -> dict[str, object]:
    """The answer to `question`; the liar (one agent per `liar` file) answers wrongly."""
    await asyncio.sleep(float(payload.get("delay", 0.0)))  # type: ignore[arg-type]
    liar = str(payload.get("liar", ""))
    if liar and _is_liar(liar):
        return {"answer": -1, "pid": os.getpid()}
    return {"answer": 42}


@app.capability()
def total(payload: dict[str, object]) -> dict[str, object]:
    """A reduce capability: the sum of the sub-results' `n` fields, and how many there were."""
    rows = payload.get("results", [])
    assert isinstance(rows, list)
    outputs = [r.get("output") or {} for r in rows if r.get("status") == "succeeded"]
    return {"sum": sum(int(o.get("n", 0)) for o in outputs), "count": len(outputs)}


@app.capability()
async def slow_echo(payload: dict[str, object]) -> dict[str, object]:
    """Echo after `ms` milliseconds (long enough to kill something mid-job)."""
    await asyncio.sleep(float(payload.get("ms", 100)) / 1000)  # type: ignore[arg-type]
    return payload


@app.capability()
def mark(payload: dict[str, object]) -> dict[str, object]:
    """Append one line to the file `path` per run: how often each sub-task ran is countable."""
    with Path(str(payload["path"])).open("a") as f:
        f.write(f"{payload.get('i')}\n")
    return {"i": payload.get("i")}
