"""SwarmHub/raw ratios, the baseline section of the report and its table, from fake sides."""

from __future__ import annotations

from typing import Any

from swarmhub.loadgen.comparison import compare, comparison_table, ratio, step_row
from swarmhub.loadgen.steps import Step, baseline_steps

STEPS = baseline_steps([1, 64], rate=1000.0, seconds=5.0, warmup=1.0)


def fake_step(tput: float, p50: float, p95: float, cpu_us: float) -> dict[str, Any]:
    return {
        "throughput_per_s": tput,
        "latency_ms": {"p50": p50, "p95": p95, "p99": p95 * 2},
        "errors": 0,
        "tasks_done": 1000,
        "cpu": {"total_us_per_task": cpu_us},
    }


def fake_side(scale: float, generator: str) -> dict[str, Any]:
    steps = {
        "closed-1": fake_step(1000.0 / scale, 1.0 * scale, 1.5 * scale, 500.0 * scale),
        "closed-64": fake_step(6000.0 / scale, 10.0 * scale, 20.0 * scale, 150.0 * scale),
        "open-1000": fake_step(1000.0, 2.0 * scale, 4.0 * scale, 600.0 * scale),
    }
    return {
        "steps": steps,
        "cpu_step": "closed-64",
        "cpu_us_per_task": {
            "us_per_task": {
                "nats-server": 50.0 * scale,
                "consumer": 100.0 * scale,
                generator: 90.0,
            },
            "total_us_per_task": 150.0 * scale,
            "load_generators": [generator],
        },
        "rss_mb": {
            "idle_mb": {"nats-server": 20.0, generator: 40.0},
            "peak_mb": {"nats-server": 35.0, generator: 45.0},
            "idle_total_mb": 20.0,
            "peak_total_mb": 35.0,
            "load_generators": [generator],
        },
    }


def config() -> dict[str, Any]:
    return {"capability": "echo", "task_bytes": 226, "seconds": 5.0, "warmup_s": 1.0}


def test_ratio_is_swarmhub_over_raw() -> None:
    assert ratio(250.0, 1000.0) == 0.25
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(1.0, 3.0) == 0.333
    assert ratio(None, 1.0) is None
    assert ratio(1.0, None) is None
    assert ratio(1.0, 0.0) is None


def test_a_step_row_holds_both_sides_and_every_ratio() -> None:
    row = step_row(STEPS[1], fake_step(6000, 10, 20, 150), fake_step(1500, 40, 60, 900))
    assert row["name"] == "closed-64"
    assert row["ratio"] == {
        "throughput": 0.25,
        "p50": 4.0,
        "p95": 3.0,
        "p99": 3.0,
        "cpu_per_task": 6.0,
    }
    assert row["raw"]["throughput_per_s"] == 6000
    assert row["swarmhub"]["p95_ms"] == 60


def test_compare_gives_ratio_per_concurrency_and_the_headline() -> None:
    baseline = compare(STEPS, fake_side(1.0, "producer"), fake_side(4.0, "loadgen"), config())
    assert baseline["ratio"] == {"closed-1": 0.25, "closed-64": 0.25, "open-1000": 1.0}
    headline = baseline["headline"]
    assert headline["p50_ratio_at_1"] == 4.0
    assert headline["open_p95_ratio"] == 4.0
    assert headline["cpu_step"] == "closed-64"
    assert headline["cpu_total_us_per_task"] == {"raw": 150.0, "swarmhub": 600.0, "ratio": 4.0}
    assert baseline["errors"] == {}


def test_a_failed_side_gives_no_ratios_but_a_complete_section() -> None:
    baseline = compare(STEPS, {"error": "RuntimeError: no server"}, fake_side(4.0, "x"), config())
    assert baseline["ratio"] == {"closed-1": None, "closed-64": None, "open-1000": None}
    assert baseline["errors"] == {"raw": "RuntimeError: no server"}
    text = comparison_table(baseline)
    assert "raw failed: RuntimeError: no server" in text


def test_the_table_shows_both_sides_side_by_side() -> None:
    text = comparison_table(
        compare(STEPS, fake_side(1.0, "producer"), fake_side(4.0, "loadgen"), config())
    )
    lines = text.splitlines()
    assert "'echo' tasks of 226 bytes" in lines[0]
    header = next(line for line in lines if line.strip().startswith("STEP"))
    for column in ("RAW/s", "HUB/s", "HUB/RAW", "RAW P50", "HUB P50", "RAW P95", "HUB P99"):
        assert column in header
    row = next(line for line in lines if line.strip().startswith("closed, 64 in flight"))
    assert "6000.0" in row and "1500.0" in row and "0.25x" in row
    assert "P50 at 1 in flight: SwarmHub/raw 4.00x (4.00 vs 1.00 ms)" in text
    assert "P95 of the open loop at 1000/s: SwarmHub/raw 4.00x (16.00 vs 4.00 ms)" in text
    assert (
        "raw        150.0 = nats-server 50.0 + consumer 100.0; load generator: producer 90.0"
        in text
    )
    assert "nats-server 20.0 -> 35.0" in text
    assert "producer (load generator) 40.0 -> 45.0" in text


def test_steps_are_named_and_labelled() -> None:
    assert [s.name for s in STEPS] == ["closed-1", "closed-64", "open-1000"]
    assert STEPS[2].label == "open, 1000/s"
    assert Step.from_dict(STEPS[1].as_dict()) == STEPS[1]
