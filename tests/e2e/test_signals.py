"""The real signals of a live local cluster: every process's /metrics and /readyz, and a real
Prometheus scraping them with the shipped rules and the dashboard's queries."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from swarmhub.client import SwarmClient
from swarmhub.embedded import ClusterConfig, LocalCluster, free_port, free_port_block
from swarmhub.observe import LocalPrometheus
from swarmhub.schemas import SwarmJob
from tests.conftest import REPO, wait_for_agents, wait_until

PROCESSES = 1 + 1 + 2 + 1  # coordinator, cache, workers, router


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster whose every process serves metrics on its own port."""
    local = LocalCluster(
        ClusterConfig(
            data_dir=tmp_path_factory.mktemp("signals"),
            port=free_port(),
            metrics_port=free_port_block(PROCESSES + 1),
        ),
        on_event=lambda text: None,
    ).start()
    try:
        asyncio.run(wait_for_agents(local.url, 2, timeout=60))
        yield local
    finally:
        local.stop()


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def targets(cluster: LocalCluster) -> dict[str, list[str]]:
    """The file-SD lists as written for Prometheus."""
    return {
        path.stem: [t for group in json.loads(path.read_text()) for t in group["targets"]]
        for path in cluster.targets_dir.glob("*.json")
    }


def test_every_process_has_its_own_port_and_target(cluster: LocalCluster) -> None:
    found = targets(cluster)
    assert sorted(found) == [
        "swarmhub-cache",
        "swarmhub-coordinator",
        "swarmhub-router",
        "swarmhub-worker",
    ]
    hosts = [h for hs in found.values() for h in hs]
    assert len(hosts) == len(set(hosts)) == PROCESSES
    assert all(h.startswith("127.0.0.1:") for h in hosts)
    status, body = get(f"http://127.0.0.1:{cluster.nats.monitor_port}/varz")
    assert status == 200 and json.loads(body)["server_name"] == cluster.nats.name


def test_every_process_is_ready_and_exports_its_own_metrics(cluster: LocalCluster) -> None:
    seen: dict[str, str] = {}
    for job, hosts in targets(cluster).items():
        for host in hosts:
            deadline = time.monotonic() + 30
            while (ready := get(f"http://{host}/readyz"))[0] != 200:
                assert time.monotonic() < deadline, f"{job} {host} not ready: {ready}"
                time.sleep(0.2)
            status, text = get(f"http://{host}/metrics")
            assert status == 200
            assert "swarmhub_build_info{" in text and "swarmhub_nats_connected 1.0" in text
            assert 'swarmhub_breaker_transitions_total{from_state="closed",to_state="open"}' in text
            seen[job] = text
    assert "swarmhub_worker_capacity" in seen["swarmhub-worker"]
    assert "swarmhub_worker_capacity" not in seen["swarmhub-router"]
    assert "swarmhub_tasks_completed_total" in seen["swarmhub-router"]
    assert "swarmhub_jobs_running" in seen["swarmhub-coordinator"]
    assert "swarmhub_jobs_running" not in seen["swarmhub-router"]


def exported(text: str, series: str) -> float | None:
    """The value of one series (name and labels as exposed) in a /metrics text, if it is there."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


async def test_a_swarm_job_shows_on_the_coordinator_while_it_runs_and_once_it_ends(
    cluster: LocalCluster,
) -> None:
    (coordinator,) = targets(cluster)["swarmhub-coordinator"]

    async def scrape() -> str:
        return (await asyncio.to_thread(get, f"http://{coordinator}/metrics"))[1]

    async def reads(series: str, wanted: float) -> bool:
        return exported(await scrape(), series) == wanted

    finished = 'swarmhub_jobs_finished_total{status="succeeded"}'
    count = 'swarmhub_job_duration_seconds_count{status="succeeded"}'
    total = 'swarmhub_job_duration_seconds_sum{status="succeeded"}'
    # Given the coordinator's job figures, every final status counted from 0 on
    before = await scrape()
    assert exported(before, 'swarmhub_jobs_finished_total{status="timed_out"}') is not None
    finished_before = exported(before, finished)
    assert finished_before is not None
    async with SwarmClient.connect(cluster.url) as client:
        # When a job of two 1.5 s sub-tasks runs
        job = SwarmJob(capability="sleep", inputs=[{"ms": 1500}, {"ms": 1500}])
        running = asyncio.create_task(client.run_job(job, timeout=60))
        # Then the coordinator counts it as running while it runs
        await wait_until(lambda: reads("swarmhub_jobs_running", 1), 10, "a running job")
        result = await running
    assert result.status == "succeeded", result.error
    # And once it has ended: no longer running, counted once, its duration observed
    await wait_until(lambda: reads("swarmhub_jobs_running", 0), 10, "no running job")
    await wait_until(lambda: reads(finished, finished_before + 1), 10, "a succeeded job counted")
    after = await scrape()
    assert exported(after, count) == (exported(before, count) or 0) + 1
    elapsed = (exported(after, total) or 0) - (exported(before, total) or 0)
    assert elapsed >= 1.5
    assert elapsed == pytest.approx(result.elapsed_ms / 1000)


def query(prometheus: LocalPrometheus, expr: str) -> dict[str, Any]:
    """An instant query through Prometheus's HTTP API."""
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = get(url)
    answer: dict[str, Any] = json.loads(body)
    assert status == 200 and answer["status"] == "success", f"{expr}: {body[:300]}"
    return answer


def dashboard_queries() -> list[str]:
    """Every `expr` of the shipped Grafana dashboard, with its variables given values."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads((REPO / "deploy/grafana/dashboards/swarmhub.json").read_text()))
    return [
        q.replace("$__rate_interval", "1m").replace("$capability", ".*").replace("$job", ".*")
        for q in found
    ]


def test_prometheus_scrapes_it_and_every_rule_and_panel_evaluates(
    cluster: LocalCluster, tmp_path: Any
) -> None:
    prometheus = LocalPrometheus(tmp_path / "prometheus", cluster.targets_dir, free_port())
    prometheus.start()
    try:

        async def some_tasks() -> None:
            async with SwarmClient.connect(cluster.url) as client:
                for i in range(5):
                    await client.run("echo", {"i": i}, timeout=30)

        asyncio.run(some_tasks())
        deadline = time.monotonic() + 60
        while True:
            up = query(prometheus, 'sum(up{job=~"swarmhub-.*"})')["data"]["result"]
            if up and float(up[0]["value"][1]) == PROCESSES:
                break
            assert time.monotonic() < deadline, f"targets up: {up}"
            time.sleep(0.5)
        assert prometheus.rules, "the shipped rules were not found"
        deadline = time.monotonic() + 30
        while True:
            groups = json.loads(get(f"{prometheus.url}/api/v1/rules")[1])["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if rules and all(r.get("lastEvaluation", "").startswith("2") for r in rules):
                break
            assert time.monotonic() < deadline, "rules were not all evaluated"
            time.sleep(0.5)
        broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert not broken
        for expr in dashboard_queries():
            query(prometheus, expr)
    finally:
        prometheus.stop()


def test_tasks_waiting_for_a_missing_capability_show_on_the_router(cluster: LocalCluster) -> None:
    async def submit() -> None:
        async with SwarmClient.connect(cluster.url) as client:
            await client.submit("nobody-offers-this", {})

    asyncio.run(submit())
    (router,) = targets(cluster)["swarmhub-router"]
    deadline = time.monotonic() + 20
    wanted = 'swarmhub_tasks_waiting_for_agent{capability="other"} 1.0'
    while wanted not in get(f"http://{router}/metrics")[1]:
        assert time.monotonic() < deadline, "the waiting task never showed on the router"
        time.sleep(0.2)
