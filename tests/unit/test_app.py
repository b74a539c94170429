"""Declaring capabilities with App and loading an app by MODULE[:ATTR]."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarmhub import App, NonRetryableError
from swarmhub.app import AppError, load_app, split_spec
from swarmhub.handlers import CapabilityDefinitionError
from tests.apps import sample

REPO = Path(__file__).resolve().parents[2]


def handler(app: App, name: str) -> Any:
    capability = app.registry.get(name)
    assert capability is not None, name
    return capability.handler


async def test_a_sync_capability_runs_in_a_thread() -> None:
    out = await handler(sample.app, "upper")({"text": "hi"})
    assert out["text"] == "HI"
    assert out["thread"] != threading.main_thread().name


async def test_a_typed_payload_is_validated_and_a_returned_model_is_sent_as_json() -> None:
    greet = handler(sample.app, "greet")
    assert await greet({"name": "ada", "excited": True}) == {
        "name": "hello ada!",
        "excited": True,
    }
    with pytest.raises(NonRetryableError, match=r"does not fit Greeting: field 'name'"):
        await greet({"nom": "ada"})


async def test_an_output_msgpack_cannot_carry_fails_naming_the_function() -> None:
    with pytest.raises(NonRetryableError, match=r"tests\.apps\.sample\.odd returned a value"):
        await handler(sample.app, "odd")({})


def test_options_are_kept_per_capability() -> None:
    flaky = sample.app.registry.get("flaky")
    slow = sample.app.registry.get("slow")
    assert flaky is not None and flaky.max_attempts == 1 and not flaky.memoize
    assert slow is not None and slow.timeout == 0.3
    assert sample.app.names() == sorted(
        ["upper", "greet", "flaky", "slow", "blocking", "refuse", "odd", "touch", "hang"]
    )


@pytest.mark.parametrize(
    ("fn", "why"),
    [
        (lambda a, b: None, "requires 2 arguments"),
        (int, "is not a function"),
        ("text", "is not a function"),
    ],
)
def test_what_cannot_be_a_capability_is_refused_at_registration(fn: Any, why: str) -> None:
    app = App("bad")
    with pytest.raises(CapabilityDefinitionError, match=why):
        app.capability("x")(fn)


def test_a_generator_is_refused_naming_it() -> None:
    app = App("bad")

    def numbers(payload: dict[str, Any]) -> Iterator[int]:
        yield 1

    with pytest.raises(CapabilityDefinitionError, match=r"numbers is a generator.*not yield"):
        app.capability()(numbers)


def test_names_and_options_are_checked() -> None:
    app = App("ok")
    with pytest.raises(ValueError, match="must contain only"):
        app.capability("two words")
    with pytest.raises(ValueError, match="timeout must be"):
        app.capability("t", timeout=0)(lambda p: p)
    with pytest.raises(ValueError, match="max_attempts must be"):
        app.capability("m", max_attempts=50)(lambda p: p)
    with pytest.raises(ValueError, match=r"proficiency must be in \(0, 1\]"):
        app.capability("p", proficiency=0)(lambda p: p)
    app.capability("half", proficiency=0.5)(lambda p: p)
    assert app.registry.proficiency() == {"half": 0.5}
    app.capability("same")(lambda p: p)
    with pytest.raises(ValueError, match="already registered"):
        app.capability("same")(lambda p: p)
    with pytest.raises(ValueError, match="app name"):
        App("no spaces allowed")


def test_builtins_are_offered_only_when_asked() -> None:
    assert App("plain").names() == []
    assert App("with", include_builtins=True).names() == ["cpu", "echo", "fail", "sleep"]


def test_load_app_finds_the_app_attribute_by_default() -> None:
    assert load_app("tests.apps.sample", REPO) is sample.app
    assert load_app("tests.apps.sample:app", REPO) is sample.app


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.apps.nothere", "No module named 'tests.apps.nothere'"),
        ("tests.apps.sample:missing", "has no attribute 'missing'"),
        ("tests.apps.sample:not_an_app", "is a dict, not a swarmhub.App"),
        ("tests.apps.sample:empty", "declares no capabilities"),
        ("not a module", "is not MODULE[:ATTR]"),
    ],
)
def test_load_app_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(AppError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_app(spec, REPO)


def test_an_import_error_inside_the_module_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken_agents.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(AppError, match=r"Importing .broken_agents. failed.*no_such_dependency_xyz"):
        load_app("broken_agents", tmp_path)


def test_split_spec() -> None:
    assert split_spec("pkg.mod") == ("pkg.mod", "app")
    assert split_spec("pkg.mod:worker") == ("pkg.mod", "worker")


class _Callable:
    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def method(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload


def _nested() -> Any:
    def inner(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    return inner


@pytest.mark.parametrize(
    ("fn", "named", "why"),
    [
        (
            sample.greeting,
            r"tests\.apps\.sample\.greeting",
            "is async; isolate=True runs only sync",
        ),
        (lambda p: p, r"<lambda>", "is not a module-level function"),
        (_nested(), r"_nested\.<locals>\.inner", "is not a module-level function"),
        (_Callable(), r"_Callable", "is not a module-level function"),
        (_Callable().method, r"_Callable\.method", "is not a module-level function"),
        (functools.partial(sample.upper), r"partial", "is not a module-level function"),
    ],
)
def test_an_isolated_capability_that_a_child_could_not_run_is_refused_naming_it(
    fn: Any, named: str, why: str
) -> None:
    app = App("bad")
    with pytest.raises(CapabilityDefinitionError, match=f"{named}.* {why}"):
        app.capability("x", isolate=True)(fn)
    assert app.names() == []


def test_an_isolated_generator_is_refused_as_any_generator() -> None:
    def numbers(payload: dict[str, Any]) -> Iterator[int]:
        yield 1

    with pytest.raises(CapabilityDefinitionError, match=r"numbers is a generator"):
        App("bad").capability(isolate=True)(numbers)


def test_a_module_level_sync_function_may_be_isolated() -> None:
    app = App("ok")
    app.capability("shout", isolate=True)(sample.upper)
    shout = app.registry.get("shout")
    assert shout is not None and shout.isolate
    assert not sample.app.registry.get("upper").isolate  # type: ignore[union-attr]
