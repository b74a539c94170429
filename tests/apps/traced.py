"""An app for the trace tests: the built-ins, one capability that fails once, one that raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from swarmhub import App

app = App("traced", include_builtins=True)


@app.capability()
def flaky(payload: dict[str, Any]) -> dict[str, Any]:
    """Fail the first attempt of a task (a marker file, seen by every worker), then succeed."""
    marker = Path(str(payload["marker"]))
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return {"attempt": "later"}


def _deep_in_user_code(value: int) -> int:
    return value // 0


@app.capability(max_attempts=1)
async def boom(payload: dict[str, Any]) -> int:
    """Raise from inside the user's own code (its traceback belongs on the span only)."""
    return _deep_in_user_code(int(payload.get("value", 1)))
