"""The one msgpack codec: models to bytes and back, with errors that name the problem."""

from __future__ import annotations

from typing import Any, TypeVar

import msgpack
from pydantic import BaseModel, ValidationError

from swarmhub.errors import ErrorCode, ServiceError
from swarmhub.limits import MAX_ERROR_MESSAGE, cut

CONTENT_TYPE = "application/msgpack"
DEFAULT_MAX_BODY = 1024 * 1024

M = TypeVar("M", bound=BaseModel)
MAX_ERRORS_NAMED = 10
"""Most fields one validation message names; the rest are counted."""
_MAX_LOC_PART = 64
_MAX_ERROR_PART = 200


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into one short sentence naming the offending fields.

    Field names and map keys come from the sender: each is cut, and only the first
    MAX_ERRORS_NAMED errors are named, so the sentence never carries the body back.
    """
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for err in errors[:MAX_ERRORS_NAMED]:
        where = ".".join(cut(str(p), _MAX_LOC_PART) for p in err["loc"]) or "body"
        parts.append(f"field '{cut(where, _MAX_ERROR_PART)}': {cut(err['msg'], _MAX_ERROR_PART)}")
    if len(errors) > MAX_ERRORS_NAMED:
        parts.append(f"and {len(errors) - MAX_ERRORS_NAMED} more")
    return "; ".join(parts)


def pack(obj: Any) -> bytes:
    """Encode a plain value as msgpack."""
    return msgpack.packb(obj, use_bin_type=True, datetime=False)  # type: ignore[no-any-return]


def unpack(data: bytes) -> Any:
    """Decode msgpack into plain values; raises ServiceError(malformed) on bad bytes."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    # TypeError: a map key msgpack can carry but Python cannot hash (an array or a map).
    except (
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
        ValueError,
        TypeError,
    ) as exc:
        raise ServiceError(
            ErrorCode.MALFORMED,
            f"Body is not valid msgpack ({type(exc).__name__}: {cut(str(exc), 200)}).",
        ) from None


def encode(model: BaseModel, *, max_bytes: int = DEFAULT_MAX_BODY) -> bytes:
    """Encode a model as msgpack; raises ServiceError(too_large) above `max_bytes`.

    Also too_large: a value msgpack cannot carry, nested deeper than it packs (a decoded value
    wrapped in a reply can be) or an integer outside 64 bits.
    """
    try:
        data = pack(model.model_dump(mode="python", exclude_none=False))
    except (ValueError, OverflowError) as exc:
        raise ServiceError(
            ErrorCode.TOO_LARGE,
            f"{type(model).__name__} cannot be encoded as msgpack "
            f"({type(exc).__name__}: {cut(str(exc), 200)}).",
        ) from None
    if len(data) > max_bytes:
        raise ServiceError(
            ErrorCode.TOO_LARGE,
            f"{type(model).__name__} is {len(data)} bytes, above the limit of {max_bytes} bytes.",
        )
    return data


def unpack_map(
    data: bytes, model: type[BaseModel], *, max_bytes: int = DEFAULT_MAX_BODY
) -> dict[str, Any]:
    """Decode msgpack bytes meant for `model` into a plain map, within `max_bytes`."""
    if len(data) > max_bytes:
        raise ServiceError(
            ErrorCode.TOO_LARGE, f"Body is {len(data)} bytes, above the limit of {max_bytes} bytes."
        )
    obj = unpack(data)
    if not isinstance(obj, dict):
        raise ServiceError(
            ErrorCode.BAD_REQUEST,
            f"Body must be a msgpack map for {model.__name__}, got {type(obj).__name__}.",
        )
    return obj


def validate(obj: dict[str, Any], model: type[M]) -> M:
    """Validate a decoded map as `model`; a failure is a ServiceError naming each field."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise ServiceError(
            ErrorCode.BAD_REQUEST,
            cut(f"Invalid {model.__name__}: {describe_validation_error(exc)}.", MAX_ERROR_MESSAGE),
        ) from None


def decode(data: bytes, model: type[M], *, max_bytes: int = DEFAULT_MAX_BODY) -> M:
    """Decode and validate msgpack bytes as `model`; every failure is a ServiceError."""
    return validate(unpack_map(data, model, max_bytes=max_bytes), model)
