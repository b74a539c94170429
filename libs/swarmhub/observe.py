"""A local Prometheus for `swarmhub up --observe`: scrapes the cluster, loads the shipped rules."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from swarmhub.embedded import SCRAPE_JOBS, stop_process

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
"""The alert and recording rules, when running from a source checkout."""


class ObserveError(RuntimeError):
    """The local Prometheus could not be started; the message says why."""


def prometheus_config(targets_dir: Path, rules: list[Path], interval: float = 5.0) -> str:
    """Prometheus configuration: one job per service from its file-SD list, and the rules."""
    lines = [
        "global:",
        f"  scrape_interval: {interval:g}s",
        f"  evaluation_interval: {interval:g}s",
        "rule_files:",
        *(f'  - "{rule}"' for rule in rules),
        "scrape_configs:",
    ]
    if not rules:
        lines[lines.index("rule_files:")] = "rule_files: []"
    for job in sorted(set(SCRAPE_JOBS.values())):
        lines += [
            f"  - job_name: {job}",
            "    file_sd_configs:",
            f'      - files: ["{targets_dir / f"{job}.json"}"]',
            "        refresh_interval: 5s",
        ]
    return "\n".join(lines) + "\n"


class LocalPrometheus:
    """A Prometheus server process on loopback, stopped by its PID."""

    def __init__(self, data_dir: Path, targets_dir: Path, port: int, interval: float = 5.0) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self.targets_dir = targets_dir
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.rules = sorted(RULES.glob("*.yml")) if RULES.is_dir() else []

    @property
    def url(self) -> str:
        """Where its UI and HTTP API answer."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalPrometheus:
        """Start it and wait until it says it is ready."""
        binary = shutil.which("prometheus")
        if binary is None:
            raise ObserveError(
                "--observe needs the `prometheus` binary (Debian: apt-get install prometheus)."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "prometheus.yml"
        config.write_text(prometheus_config(self.targets_dir, self.rules, self.interval))
        log = (self.data_dir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ObserveError(
                    f"Prometheus did not start on port {self.port}; see "
                    f"{self.data_dir / 'prometheus.log'}."
                )
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop it by its PID."""
        stop_process(self.proc, 10.0)
