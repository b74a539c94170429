"""Argument parsing into a validated LoadConfig, and the usage/error exit codes."""

from __future__ import annotations

import argparse

import pytest

from swarmhub.embedded import free_port
from swarmhub.loadgen.__main__ import build_parser, main
from swarmhub.loadgen.cli import load_config, weights


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["load", *argv])


def test_defaults_are_an_open_loop_of_ten_seconds() -> None:
    cfg = load_config(parse("--url", "nats://127.0.0.1:4999"))
    assert (cfg.mode, cfg.rate, cfg.duration, cfg.count) == ("open", 100.0, 10.0, None)
    assert cfg.url == "nats://127.0.0.1:4999"
    assert cfg.thresholds.min_throughput == 400.0


def test_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMHUB_NATS_URL", "nats://127.0.0.1:4321")
    assert load_config(parse()).url == "nats://127.0.0.1:4321"


def test_closed_loop_with_count_and_overrides() -> None:
    cfg = load_config(
        parse(
            "--scenario", "cache", "--concurrency", "8", "--count", "500",
            "--max-p95-ms", "0.001", "--max-error-rate", "5", "--payload", '{"rounds": 3}',
        )
    )  # fmt: skip
    assert (cfg.mode, cfg.concurrency, cfg.count, cfg.duration) == ("closed", 8, 500, None)
    assert cfg.thresholds.max_p95_ms == 0.001
    assert cfg.thresholds.max_error_pct == 5.0
    assert cfg.traffic.payload == {"rounds": 3}


def test_find_max_steps_the_rate_for_step_duration() -> None:
    cfg = load_config(parse("--find-max", "--start-rate", "50", "--step-duration", "2"))
    assert (cfg.rate, cfg.duration) == (50.0, 2.0)
    with pytest.raises(ValueError, match="--concurrency"):
        load_config(parse("--find-max", "--concurrency", "4"))


def test_rate_and_concurrency_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as exc:
        parse("--rate", "10", "--concurrency", "4")
    assert exc.value.code == 2


def test_mix_weights() -> None:
    assert weights("task=6, cache=3,agent") == {"task": 6.0, "cache": 3.0, "agent": 1.0}
    with pytest.raises(argparse.ArgumentTypeError):
        weights("task=lots")


def test_bad_values_exit_with_usage_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "--rate", "-5", "--pids", "1"]) == 2
    assert "--rate must be above 0" in capsys.readouterr().err


def test_no_server_exits_with_error_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("swarmhub.loadgen.connection.CONNECT_TIMEOUT", 1.0)
    url = f"nats://127.0.0.1:{free_port()}"
    code = main(["load", "--url", url, "--duration", "1", "--pids", "1", "--quiet"])
    assert code == 1
    assert "Cannot connect" in capsys.readouterr().err
