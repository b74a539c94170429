"""Turn a user's function into a capability handler: async or sync, a dict or a typed payload."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from swarmhub import codec
from swarmhub.errors import NonRetryableError

HandlerFn = Callable[[dict[str, Any]], Awaitable[Any]]


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


def as_handler(fn: Any, *, check_output: bool = True) -> HandlerFn:
    """`fn` as an async handler of a payload dict; refuses, naming `fn`, what cannot be one.

    Sync functions run in the event loop's default thread pool (the worker sizes it to its
    concurrency); a parameter annotated with a pydantic model receives the validated payload;
    a returned model is sent as its JSON form; an output msgpack cannot carry fails the task
    with a message saying so.
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
    param = _payload_parameter(fn)
    model = _payload_model(fn, param) if param is not None else None
    is_async = inspect.iscoroutinefunction(fn)
    if is_async and model is None and param is not None and not check_output:
        return typing.cast(HandlerFn, fn)  # the built-ins' shape: nothing to adapt

    def argument(payload: dict[str, Any]) -> tuple[Any, ...]:
        if param is None:
            return ()
        if model is None:
            return (payload,)
        try:
            return (model.model_validate(payload),)
        except ValidationError as exc:
            raise NonRetryableError(
                f"Payload does not fit {model.__name__}: {codec.describe_validation_error(exc)}"
            ) from None

    async def handler(payload: dict[str, Any]) -> Any:
        args = argument(payload)
        if is_async:
            output = await fn(*args)
        else:
            output = await asyncio.to_thread(fn, *args)
            if inspect.isawaitable(output):
                output = await output
        output = _dump(output)
        if check_output:
            try:
                codec.pack(output)
            except (TypeError, ValueError, OverflowError) as exc:
                raise NonRetryableError(
                    f"Capability function {describe(fn)} returned a value msgpack cannot carry "
                    f"({exc}); return dicts, lists, str, int, float, bool, bytes or None."
                ) from None
        return output

    handler.__name__ = getattr(fn, "__name__", "capability")
    handler.__doc__ = getattr(fn, "__doc__", None)
    return handler
