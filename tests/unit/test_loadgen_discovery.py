"""Finding processes to sample: PID lists, command lines, URL ports."""

from __future__ import annotations

import os

import pytest

from swarmhub.loadgen.discovery import parse_pids, service_of, url_port
from swarmhub.loadgen.resources import ResourceSampler


def test_url_port() -> None:
    assert url_port("nats://127.0.0.1:4333") == 4333
    assert url_port("nats://127.0.0.1") == 4222
    assert url_port("nats://a:1,nats://b:2") == 1


def test_parse_pids_with_and_without_names() -> None:
    assert parse_pids("12, 34") == {"pid-12": 12, "pid-34": 34}
    assert parse_pids("router=7,nats=8") == {"router": 7, "nats": 8}
    with pytest.raises(ValueError, match="Invalid PID"):
        parse_pids("twelve")


def test_service_of_command_lines() -> None:
    assert service_of(["/x/python", "-m", "swarmhub.task_router"]) == "task-router"
    assert service_of(["python3", "-u", "-m", "swarmhub.cache_service"]) == "cache"
    assert service_of(["python", "-m", "pytest"]) is None
    assert service_of(["python", "-m"]) is None


def test_sampler_reads_our_own_process() -> None:
    pid = os.getpid()
    sampler = ResourceSampler(lambda: {"me": pid}, start=0.0)
    sampler.prime()
    first = sampler.sample()
    second = sampler.sample()
    assert first.rss_mb["me"] > 1
    assert second.t >= first.t
    summary = sampler.summary(since=0.0)
    assert summary["samples"] == 2
    assert summary["processes"]["me"]["rss_mb_max"] > 1
    assert summary["mem_growth_mb_h"] is None  # two points are not a slope


def test_sampler_skips_vanished_processes() -> None:
    sampler = ResourceSampler(lambda: {"gone": 2**22 + 12345})
    sample = sampler.sample()
    assert sample.rss_mb == {}


def test_srv_info_pids_count_only_when_they_run_a_service_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import swarmhub.loadgen.discovery as discovery

    local = {101: "task-router"}
    monkeypatch.setattr(discovery, "_local_service", local.get)
    infos = [
        {"name": "task-router", "metadata": {"pid": "101"}},
        {"name": "cache", "metadata": {"pid": "202"}},  # another host, or gone
        {"name": "agent-worker", "metadata": None},
    ]
    assert discovery.from_srv_info(infos) == {"task-router:101": 101}
