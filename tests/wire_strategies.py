"""Hypothesis strategies for the wire: valid documents of every message, hostile ones, raw bytes.

Valid documents are drawn from each model's JSON Schema (what `swarmhub.wire_schemas` publishes),
then kept only when the model accepts them (cross-field rules the schema cannot say). Hostile
documents are valid ones with one thing changed: a value anywhere replaced by a wrong type, a huge
or non-finite number, a very long string, a ~1000-level nesting; a key removed; a key added.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import msgpack
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from swarmhub import codec, schemas
from swarmhub.wire_schemas import wire_models

Doc = dict[str, Any]
Path = tuple[Any, ...]

# Reproducible in CI: no example database, derandomized, no per-example deadline.
FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

MODELS: list[type[schemas.Message]] = wire_models()
MSGPACK_INT = st.integers(-(2**63), 2**64 - 1)
LONG = 200
"""Strings at least this long never come back whole in an error message (ids, at most 128
characters, may be named in full)."""
EPOCH_HINT = f"from {schemas.EPOCH_MIN:.0f}"  # in the description of every EpochSeconds field


# -- plain msgpack values ------------------------------------------------------------------


def msgpack_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Values msgpack round-trips exactly: no NaN, string keys, shallow."""
    leaf = (
        st.none()
        | st.booleans()
        | MSGPACK_INT
        | st.floats(allow_nan=False)
        | st.text(max_size=16)
        | st.binary(max_size=16)
    )
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def any_msgpack(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Anything msgpack can carry: NaN, any key type, ext types, timestamps."""
    key = st.none() | st.booleans() | MSGPACK_INT | st.floats() | st.text(max_size=8) | st.binary()
    leaf = (
        st.none()
        | st.booleans()
        | MSGPACK_INT
        | st.floats()
        | st.text(max_size=32)
        | st.binary(max_size=32)
        | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))
        | st.builds(msgpack.Timestamp, st.integers(0, 2**34), st.integers(0, 999_999_999))
    )
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=4),
        max_leaves=max_leaves,
    )


# -- valid documents from the JSON Schema ---------------------------------------------------


def _number(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if EPOCH_HINT in node.get("description", ""):
        return st.floats(schemas.EPOCH_MIN, schemas.EPOCH_MAX)
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min="exclusiveMinimum" in node,
        exclude_max="exclusiveMaximum" in node,
        allow_nan=False,
    )


def _integer(node: dict[str, Any]) -> st.SearchStrategy[int]:
    low = node.get("minimum", node.get("exclusiveMinimum", -(2**63) - 1) + 1)
    high = node.get("maximum", node.get("exclusiveMaximum", 2**64) - 1)
    return st.integers(low, high)


def _string(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    low, high = node.get("minLength", 0), min(node.get("maxLength", 24), 24)
    if node.get("format") == "binary":
        return st.binary(min_size=low, max_size=high)
    if "pattern" in node:
        return st.from_regex(node["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= node.get("maxLength", math.inf)
        )
    return st.text(min_size=low, max_size=max(low, high))


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values one JSON Schema node (of our models) describes."""
    if "$ref" in node:
        return st.deferred(lambda: documents(node["$ref"].rsplit("/", 1)[-1]))
    if "anyOf" in node:
        return st.one_of([from_schema(branch) for branch in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kind = node.get("type")
    if kind is None:
        return msgpack_values()
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return _integer(node)
    if kind == "number":
        return _number(node)
    if kind == "string":
        return _string(node)
    if kind == "array":
        high = min(node.get("maxItems", 3), 3)
        low = node.get("minItems", 0)
        return st.lists(from_schema(node.get("items", {})), min_size=low, max_size=max(low, high))
    if kind == "object":
        values = node.get("additionalProperties", True)
        inner = msgpack_values() if values is True else from_schema(values)
        return st.dictionaries(
            st.text(max_size=8), inner, max_size=min(3, node.get("maxProperties", 3))
        )
    raise AssertionError(f"schema node not understood: {node}")


@cache
def _schema(name: str) -> dict[str, Any]:
    model = _by_name(name)
    if model is not None:
        return model.model_json_schema()
    for model in MODELS:  # an enum: find it in the $defs of a model that uses it
        defs = model.model_json_schema().get("$defs", {})
        if name in defs:
            return defs[name]  # type: ignore[no-any-return]
    raise AssertionError(f"no schema named {name}")


def _by_name(name: str) -> type[schemas.Message] | None:
    return next((m for m in MODELS if m.__name__ == name), None)


@cache
def documents(name: str) -> st.SearchStrategy[Any]:
    """Raw documents (plain maps) for the model or enum `name`, not yet checked by the model."""
    schema = _schema(name)
    if "properties" not in schema:
        if schema.get("type") == "object":  # a model without fields (Empty)
            return st.just({})
        return from_schema(schema)
    required = set(schema.get("required", []))
    props = schema["properties"]
    return st.fixed_dictionaries(
        {k: from_schema(v) for k, v in props.items() if k in required},
        optional={k: from_schema(v) for k, v in props.items() if k not in required},
    )


def _accepted(model: type[schemas.Message], doc: Doc) -> bool:
    try:
        model.model_validate(doc)
    except ValidationError:
        return False
    return True


@cache
def valid_documents(model: type[schemas.Message]) -> st.SearchStrategy[Doc]:
    """Documents `model` accepts."""
    return documents(model.__name__).filter(lambda doc: _accepted(model, doc))


def valid_messages(model: type[schemas.Message]) -> st.SearchStrategy[schemas.Message]:
    """Instances of `model`."""
    return valid_documents(model).map(model.model_validate)


# -- hostile values and near-valid documents -----------------------------------------------


def deep(depth: int, kind: str) -> Any:
    """A value nested `depth` levels of lists or maps."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


HOSTILE_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [
            None,
            True,
            2**64 - 1,
            2**63,
            -(2**63),
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            1e308,
            5e-324,
            "",
            b"",
            [],
            {},
        ]
    ),
    MSGPACK_INT,
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    # very long strings and blobs
    st.builds(
        lambda c, n: c * n, st.characters(exclude_categories=["Cs"]), st.integers(LONG, 100_000)
    ),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.integers(LONG, 50_000)),
    # deeply nested (msgpack itself stops at about 1024 levels)
    st.builds(deep, st.integers(60, 1000), st.sampled_from(["list", "map"])),
    # wide
    st.builds(lambda n: list(range(n)), st.integers(300, 5000)),
    any_msgpack(),
)


def paths(doc: Any, prefix: Path = (), limit: int = 200) -> list[Path]:
    """Paths to the values inside `doc` (maps and lists), the shallowest first."""
    out: list[Path] = []
    frontier: list[tuple[Path, Any]] = [(prefix, doc)]
    while frontier and len(out) < limit:
        path, value = frontier.pop(0)
        children = (
            value.items()
            if isinstance(value, dict)
            else enumerate(value)
            if isinstance(value, list)
            else ()
        )
        for key, child in children:
            out.append((*path, key))
            frontier.append(((*path, key), child))
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _at(doc: Any, path: Path) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def near_valid(draw: st.DrawFn, model: type[schemas.Message]) -> Any:
    """A valid document of `model` with one thing changed (maybe still valid)."""
    doc = _copy(draw(valid_documents(model)))
    where = paths(doc)
    maps = [()] + [p for p in where if isinstance(_at(doc, p), dict)]
    how = draw(st.sampled_from(["replace", "replace", "remove", "add", "root"]))
    if how == "replace" and where:
        path = draw(st.sampled_from(where))
        _at(doc, path[:-1])[path[-1]] = draw(HOSTILE_VALUES)
    elif how == "remove" and where:
        path = draw(st.sampled_from(where))
        del _at(doc, path[:-1])[path[-1]]
    elif how == "root":
        return draw(HOSTILE_VALUES)
    else:
        target = _at(doc, draw(st.sampled_from(maps)))
        key = draw(
            st.text(min_size=1, max_size=20)
            | st.builds(lambda n: "unknown_" + "x" * n, st.integers(LONG, 50_000))
            | st.sampled_from(sorted(model.model_fields) or ["field"])
        )
        target[key] = draw(HOSTILE_VALUES)
    return doc


def long_texts(value: Any) -> list[str]:
    """Every string (key or value) in `value` at least LONG characters long, as text."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, str) and len(item) >= LONG:
            found.append(item)
        elif isinstance(item, bytes) and len(item) >= LONG:
            found.append(str(item)[2:-1])
    return found


# -- raw bytes -----------------------------------------------------------------------------

# Type prefixes that make the msgpack parser take each branch (maps, arrays, ext, str, bin...).
_PREFIXES = (
    [bytes([b]) for b in (0x80, 0x81, 0x8F, 0x90, 0x91, 0x9F, 0xA1, 0xC0, 0xC1, 0xC2)]
    + [bytes([b]) for b in (0xC4, 0xC5, 0xC7, 0xCA, 0xCB, 0xCC, 0xCF, 0xD3, 0xD4, 0xD6, 0xD8, 0xD9)]
    + [b"\xdc\xff\xff", b"\xde\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff"]
)


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, msgpack-shaped fragments, and cut or flipped valid messages."""
    how = draw(st.sampled_from(["random", "fragments", "truncated", "flipped", "bad-key"]))
    if how == "random":
        return draw(st.binary(max_size=512))
    if how == "fragments":
        parts = draw(st.lists(st.sampled_from(_PREFIXES) | st.binary(max_size=6), max_size=30))
        return b"".join(parts)
    if how == "bad-key":  # a map keyed by an array or a map: fine for msgpack, not for Python
        key = draw(st.sampled_from([b"\x91\x01", b"\x80", b"\x81\xa1a\x01", b"\x90"]))
        return b"\x81" + key + draw(st.sampled_from([b"\x01", b"\xc0", b"\x80"]))
    model = draw(st.sampled_from(MODELS))
    data = codec.pack(draw(valid_documents(model)))
    if how == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    position = draw(st.integers(0, len(data) - 1))
    return (
        data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) + data[position + 1 :]
    )
