"""Turn a user's function into a capability handler: async or sync, a dict or a typed payload."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import inspect
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from swarmhub import codec
from swarmhub.errors import ErrorCode, NonRetryableError, ServiceError
from swarmhub.isolation import MAX_ANSWER, AnswerTooLarge, ChildDied, ChildProcesses

HandlerFn = Callable[[dict[str, Any]], Awaitable[Any]]
Arguments = Callable[[dict[str, Any]], tuple[Any, ...]]
T = TypeVar("T")
# What a child answers: a tag byte, then the packed output or an error's text.
_OUTPUT, _FAILED, _REFUSED = b"o", b"e", b"n"


@dataclass(frozen=True)
class Runners:
    """Where sync capability functions run: a thread pool, and child processes when isolated."""

    threads: Executor | None = None
    """None: the event loop's default executor."""
    processes: ChildProcesses = field(default_factory=ChildProcesses)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on one of the threads, with the caller's context variables."""
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.threads, call)

    async def close(self) -> None:
        """Kill the children still running and stop the threads (a running one ends on its own)."""
        await self.processes.close()
        if self.threads is not None:
            self.threads.shutdown(wait=False, cancel_futures=True)


runners: ContextVar[Runners | None] = ContextVar("runners", default=None)
"""The runners of the agent whose task runs now; each agent-worker sets its own around a call."""
_shared = Runners()


def current_runners() -> Runners:
    """The runners of the agent whose task runs now (outside an agent: the shared ones)."""
    return runners.get() or _shared


class CapabilityFailed(Exception):
    """An isolated function failed in its child process; the message says how, as `Type: text`."""


def failure_text(exc: BaseException) -> str:
    """A capability's error as `Type: message` (an isolated one's already is)."""
    return str(exc) if isinstance(exc, CapabilityFailed) else f"{type(exc).__name__}: {exc}"


class CapabilityDefinitionError(TypeError):
    """A function that cannot be a capability; the message names it and says why."""


def describe(fn: Any) -> str:
    """`module.qualname` of a function, for messages."""
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _payload_model(fn: Callable[..., Any], param: inspect.Parameter) -> type[BaseModel] | None:
    """The pydantic model the payload parameter is annotated with, if any."""
    if param.annotation is inspect.Parameter.empty:
        return None
    try:
        hint = typing.get_type_hints(fn).get(param.name)
    except Exception as exc:  # an annotation naming something the module never imports
        raise CapabilityDefinitionError(
            f"Capability function {describe(fn)} has a payload annotation that cannot be "
            f"resolved ({type(exc).__name__}: {exc})."
        ) from None
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return hint
    return None


def _payload_parameter(fn: Callable[..., Any]) -> inspect.Parameter | None:
    """The one parameter that receives the payload (None: the function takes none)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        raise CapabilityDefinitionError(
            f"Capability {describe(fn)} has no inspectable signature; wrap it in a def."
        ) from None
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    required_kw = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if len(positional) > 1 or required_kw:
        raise CapabilityDefinitionError(
            f"Capability function {describe(fn)} requires "
            f"{len(positional) + len(required_kw)} arguments; a capability takes one, "
            "the task's payload (a dict or a pydantic model)."
        )
    if positional:
        return positional[0]
    takes_any = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return takes_any[0] if takes_any else None


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _arguments(fn: Callable[..., Any]) -> Arguments | None:
    """How `fn` takes a payload: None when it takes the dict itself, else the argument maker."""
    param = _payload_parameter(fn)
    if param is None:
        return lambda payload: ()
    model = _payload_model(fn, param)
    if model is None:
        return None

    def validated(payload: dict[str, Any]) -> tuple[Any, ...]:
        try:
            return (model.model_validate(payload),)
        except ValidationError as exc:
            raise NonRetryableError(
                f"Payload does not fit {model.__name__}: {codec.describe_validation_error(exc)}"
            ) from None

    return validated


def _packed(fn: Callable[..., Any], output: Any) -> bytes:
    """`output` as msgpack; what msgpack cannot carry fails for good, naming `fn`."""
    try:
        return codec.pack(output)
    except (TypeError, ValueError, OverflowError) as exc:
        raise NonRetryableError(
            f"Capability function {describe(fn)} returned a value msgpack cannot carry "
            f"({exc}); return dicts, lists, str, int, float, bool, bytes or None."
        ) from None


def _check_isolatable(fn: Any) -> None:
    """Refuse, naming `fn`, what a child process could not import and run by module and name."""
    if inspect.iscoroutinefunction(fn):
        raise CapabilityDefinitionError(
            f"Capability function {describe(fn)} is async; isolate=True runs only sync "
            "functions in a child process (an async one is cancelled in place at its timeout)."
        )
    qualname = getattr(fn, "__qualname__", "")
    if not inspect.isfunction(fn) or "." in qualname or "<" in qualname or not fn.__module__:
        raise CapabilityDefinitionError(
            f"Capability {describe(fn)} is not a module-level function; isolate=True needs a "
            "def at the top level of a module, which a child process imports by module and name."
        )


def as_handler(fn: Any, *, check_output: bool = True, isolate: bool = False) -> HandlerFn:
    """`fn` as an async handler of a payload dict; refuses, naming `fn`, what cannot be one.

    Sync functions run on the current agent's threads (`runners`), or with isolate=True each
    call in a child process of its own; a parameter annotated with a pydantic model receives
    the validated payload; a returned model is sent as its JSON form; an output msgpack cannot
    carry fails the task with a message saying so.
    """
    if isinstance(fn, type) or not callable(fn):
        raise CapabilityDefinitionError(
            f"{describe(fn)} is not a function; decorate a def or an async def."
        )
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise CapabilityDefinitionError(
            f"Capability function {describe(fn)} is a generator; a capability returns one "
            "value: use return, not yield."
        )
    if isolate:
        _check_isolatable(fn)
    arguments = _arguments(fn)
    is_async = inspect.iscoroutinefunction(fn)
    if is_async and arguments is None and not check_output:
        return typing.cast(HandlerFn, fn)  # the built-ins' shape: nothing to adapt

    async def handler(payload: dict[str, Any]) -> Any:
        args = (payload,) if arguments is None else arguments(payload)
        if is_async:
            output = await fn(*args)
        else:
            output = await current_runners().in_thread(fn, *args)
            if inspect.isawaitable(output):
                output = await output
        output = _dump(output)
        if check_output:
            _packed(fn, output)
        return output

    async def isolated(payload: dict[str, Any]) -> Any:
        request = codec.pack([fn.__module__, fn.__name__, payload])
        try:
            answer = await current_runners().processes.call(run_in_child, request)
        except ChildDied as exc:
            raise CapabilityFailed(f"Isolated capability function {describe(fn)} {exc}.") from None
        except AnswerTooLarge:
            raise ServiceError(
                ErrorCode.TOO_LARGE,
                f"Capability function {describe(fn)} returned more than {MAX_ANSWER} bytes, "
                "more than any NATS message can carry.",
            ) from None
        tag, body = answer[:1], answer[1:]
        if tag == _OUTPUT:
            return codec.unpack(body)
        text = body.decode(errors="replace")
        raise NonRetryableError(text) if tag == _REFUSED else CapabilityFailed(text)

    chosen = isolated if isolate else handler
    chosen.__name__ = getattr(fn, "__name__", "capability")
    chosen.__module__ = getattr(fn, "__module__", None) or chosen.__module__
    chosen.__doc__ = getattr(fn, "__doc__", None)
    return chosen


def run_in_child(request: bytes) -> bytes:
    """In a child process: run the capability function a request names, answer tag + body."""
    module, name, payload = codec.unpack(request)
    try:
        fn = getattr(importlib.import_module(module), name)
        arguments = _arguments(fn)
        output = fn(*((payload,) if arguments is None else arguments(payload)))
        return _OUTPUT + _packed(fn, _dump(output))
    except NonRetryableError as exc:
        return _REFUSED + str(exc).encode(errors="replace")
    except BaseException as exc:  # SystemExit too: the attempt fails, saying so
        return _FAILED + failure_text(exc).encode(errors="replace")
