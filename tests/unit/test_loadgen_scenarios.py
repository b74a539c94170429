"""Scenario arithmetic that needs no server: skewed keys, payloads, the mixed blend."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from swarmhub.errors import ErrorCode
from swarmhub.loadgen.constants import SCENARIO_NAMES
from swarmhub.loadgen.scenarios import NAMES, Scenario, ScenarioConfig, build
from swarmhub.loadgen.scenarios.cache import ZipfKeys
from swarmhub.loadgen.scenarios.mixed import MixedScenario
from swarmhub.loadgen.scenarios.task import result_error
from swarmhub.schemas import ErrorInfo, ResultStatus, TaskResult


def test_scenario_names_match_the_light_constant_the_parser_uses() -> None:
    assert NAMES == SCENARIO_NAMES


def test_zipf_probabilities_follow_the_power_law() -> None:
    keys = ZipfKeys(100, 1.0, random.Random(1))
    assert sum(keys.probability(k) for k in range(100)) == pytest.approx(1.0)
    assert keys.probability(0) / keys.probability(1) == pytest.approx(2.0)
    assert keys.probability(0) / keys.probability(9) == pytest.approx(10.0)


def test_zipf_draws_are_skewed_towards_low_ranks() -> None:
    keys = ZipfKeys(1000, 1.1, random.Random(42))
    counts = Counter(keys.draw() for _ in range(20_000))
    assert counts[0] > counts[1] > counts[10]
    top_ten = sum(counts[k] for k in range(10)) / 20_000
    assert top_ten == pytest.approx(sum(keys.probability(k) for k in range(10)), abs=0.02)
    assert all(0 <= k < 1000 for k in counts)


def test_zipf_zero_is_uniform() -> None:
    keys = ZipfKeys(4, 0.0, random.Random(0))
    assert [keys.probability(k) for k in range(4)] == pytest.approx([0.25] * 4)


def test_payloads_are_unique_and_padded() -> None:
    cfg = ScenarioConfig(payload={"rounds": 10}, payload_bytes=64, run_id="abc")
    one, two = cfg.body(1), cfg.body(2)
    assert one["rounds"] == 10
    assert one["loadgen"] != two["loadgen"]
    assert len(one["pad"]) == 64
    assert "pad" not in ScenarioConfig().body(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"payload_bytes": -1},
        {"timeout": 0},
        {"keys": 0},
        {"read_ratio": 1.5},
        {"fan_out": -2},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ScenarioConfig(**bad)


class Counting(Scenario):
    """A part that only counts what it is asked to run."""

    def __init__(self, name: str) -> None:
        super().__init__(None, ScenarioConfig(), random.Random(0))  # type: ignore[arg-type]
        self.name = name
        self.ran: list[int] = []

    async def run(self, kind: str, seq: int) -> None:
        self.ran.append(seq)


async def test_mixed_picks_parts_by_weight_and_runs_them_in_the_owner() -> None:
    parts: dict[str, Scenario] = {"task": Counting("task"), "agent": Counting("agent")}
    cfg = ScenarioConfig(mix={"task": 3.0, "agent": 1.0})
    mixed = MixedScenario(None, cfg, random.Random(5), parts)  # type: ignore[arg-type]
    kinds = Counter()
    for seq in range(4000):
        kind = mixed.pick(seq)
        kinds[kind] += 1
        await mixed.run(kind, seq)
    assert kinds["task"] / 4000 == pytest.approx(0.75, abs=0.03)
    assert len(parts["task"].ran) == kinds["task"]  # type: ignore[attr-defined]


def test_mixed_rejects_unknown_parts_and_zero_weights() -> None:
    with pytest.raises(ValueError, match="Unknown scenarios"):
        build("mixed", None, ScenarioConfig(mix={"nope": 1.0}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Unknown scenario"):
        build("bogus", None, ScenarioConfig())  # type: ignore[arg-type]


def test_result_error_carries_the_result_code() -> None:
    ok = TaskResult(task_id="t", status=ResultStatus.SUCCEEDED)
    assert result_error(ok) is None
    failed = TaskResult(
        task_id="t",
        status=ResultStatus.FAILED,
        error=ErrorInfo(code=ErrorCode.HANDLER_ERROR, message="boom"),
    )
    error = result_error(failed)
    assert error is not None and error.code is ErrorCode.HANDLER_ERROR
    timed_out = result_error(TaskResult(task_id="t", status=ResultStatus.TIMED_OUT))
    assert timed_out is not None and timed_out.code is ErrorCode.TIMEOUT
