"""Your own agent: `app = App("name")`, `@app.capability()`, then `swarmhub worker module:app`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from swarmhub.capabilities import CapabilityRegistry, builtins
from swarmhub.subjects import check_token

F = TypeVar("F", bound=Callable[..., Any])


class AppError(ValueError):
    """An app that cannot be loaded or run; the message says what to do."""


class App:
    """A named set of capabilities that `swarmhub worker MODULE[:ATTR]` runs as an agent."""

    def __init__(self, name: str, *, include_builtins: bool = False) -> None:
        self.name = check_token(name, "app name")
        self.registry = CapabilityRegistry()
        if include_builtins:
            for cap_name in builtins.names():
                capability = builtins.get(cap_name)
                assert capability is not None
                self.registry.add(capability)

    def capability(
        self,
        name: str | None = None,
        *,
        timeout: float | None = None,
        max_attempts: int | None = None,
        memoize: bool = False,
        concurrency: int | None = None,
        proficiency: float = 1.0,
        isolate: bool = False,
    ) -> Callable[[F], F]:
        """Decorator: offer a function (sync or async) as a capability, named after it by default.

        The function takes the task's payload (a dict, or a pydantic model it is validated into)
        and returns the output. `timeout` caps each attempt (seconds), `max_attempts` caps the
        task's attempts, `memoize` caches outputs by payload (opt in only for pure functions),
        `concurrency` caps this capability's runs at once in one worker; `proficiency` in
        (0, 1] tells routers how good this agent is at it (they prefer better agents with room).
        `isolate=True` runs each call of a sync, module-level function in a child process of its
        own, killed when its attempt times out or is cancelled; a crash fails only the attempt.
        """
        return self.registry.register(
            name,
            timeout=timeout,
            max_attempts=max_attempts,
            memoize=memoize,
            concurrency=concurrency,
            proficiency=proficiency,
            isolate=isolate,
        )

    def names(self) -> list[str]:
        """The capabilities this app offers, sorted."""
        return self.registry.names()

    def __repr__(self) -> str:
        return f"App({self.name!r}, capabilities={self.names()})"


def split_spec(spec: str) -> tuple[str, str]:
    """`MODULE[:ATTR]` as (module, attr); attr defaults to `app`."""
    module, _, attr = spec.partition(":")
    if not module or any(not part.isidentifier() for part in module.split(".")):
        raise AppError(f"{spec!r} is not MODULE[:ATTR] (e.g. 'agents:app' for app in agents.py).")
    return module, attr or "app"


def load_app(spec: str, app_dir: Path | str = ".") -> App:
    """Import `MODULE[:ATTR]` from `app_dir` (default: the current folder) and return its App."""
    module_name, attr = split_spec(spec)
    folder = str(Path(app_dir).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppError(
                f"No module named {module_name!r} in {folder} or on the Python path; run from "
                "the folder that holds it or pass --app-dir."
            ) from None
        raise AppError(f"Importing {module_name!r} failed: {exc}.") from exc
    except Exception as exc:
        raise AppError(f"Importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    found = getattr(module, attr, None)
    if found is None:
        raise AppError(
            f"Module {module_name!r} has no attribute {attr!r}; define "
            f'`{attr} = swarmhub.App("name")` there, or pass MODULE:ATTR.'
        )
    if not isinstance(found, App):
        raise AppError(
            f"{module_name}:{attr} is a {type(found).__name__}, not a swarmhub.App; "
            f'define `{attr} = swarmhub.App("name")` and decorate functions with '
            f"@{attr}.capability()."
        )
    if not found.names():
        raise AppError(
            f"{module_name}:{attr} declares no capabilities; decorate a function with "
            f"@{attr}.capability()."
        )
    return found
