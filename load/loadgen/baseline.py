"""`swarmhub bench --baseline`: the same steps over a raw nats-py pipeline and over SwarmHub."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from swarmhub import codec
from swarmhub.client import SwarmClient
from swarmhub.loadgen.comparison import compare
from swarmhub.loadgen.measure import measured_steps
from swarmhub.loadgen.raw import protocol
from swarmhub.loadgen.raw.pipeline import run_raw
from swarmhub.loadgen.resources import PidSource
from swarmhub.loadgen.runner import execute
from swarmhub.loadgen.scenarios import ScenarioConfig
from swarmhub.loadgen.steps import Step, baseline_steps, figures_from_report
from swarmhub.schemas import Task

LOADGEN = "loadgen"  # the bench process itself, SwarmHub's load generator


@dataclass(frozen=True)
class BaselineConfig:
    """The comparison's steps: closed loops at each concurrency, then the open loop at `rate`."""

    concurrencies: tuple[int, ...] = (1, 64, 512)
    rate: float = 1000.0
    seconds: float = 5.0
    warmup: float = 1.0
    capability: str = "echo"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.concurrencies or min(self.concurrencies) < 1:
            raise ValueError("--baseline-concurrency needs one or more numbers of at least 1.")
        if self.rate <= 0 or self.seconds <= 0 or self.warmup < 0:
            raise ValueError(
                "--baseline-rate and --baseline-seconds must be above 0, "
                "--baseline-warmup 0 or more."
            )

    def steps(self) -> list[Step]:
        """Every step, in the order both sides run them."""
        return baseline_steps(self.concurrencies, self.rate, self.seconds, self.warmup)

    def as_dict(self, task_bytes: int) -> dict[str, Any]:
        """JSON-ready form, with the size of one task message."""
        return {
            "concurrencies": list(self.concurrencies),
            "rate": self.rate,
            "seconds": self.seconds,
            "warmup_s": self.warmup,
            "capability": self.capability,
            "timeout_s": self.timeout,
            "task_bytes": task_bytes,
            "fetch_batch": protocol.FETCH_BATCH,
        }


def concurrency_list(text: str) -> tuple[int, ...]:
    """Parse `1,64,512`."""
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"Invalid --baseline-concurrency {text!r}; write e.g. 1,64,512.") from None


def hub_task_bytes(cfg: BaselineConfig) -> int:
    """Bytes of one SwarmHub task message of this workload; the raw tasks are padded to it."""
    body = ScenarioConfig(capability=cfg.capability, run_id="00000000s0").body(0)
    task = Task(capability=cfg.capability, payload=body, attempt_timeout=cfg.timeout)
    return len(codec.encode(task))


def run_raw_side(cfg: BaselineConfig, task_bytes: int, progress: bool) -> dict[str, Any]:
    """The raw pipeline's figures, or {"error": ...} when it could not run."""
    try:
        return run_raw(cfg.steps(), task_bytes, cfg.timeout, progress)
    except (RuntimeError, TimeoutError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


async def run_hub_side(
    client: SwarmClient,
    url: str,
    cfg: BaselineConfig,
    pids: PidSource,
    run_id: str,
    progress: bool,
) -> dict[str, Any]:
    """SwarmHub's figures over the same steps, through the load generator's own runner."""

    async def one(step: Step, index: int) -> dict[str, Any]:
        traffic = ScenarioConfig(
            capability=cfg.capability, timeout=cfg.timeout, run_id=f"{run_id}s{index}"
        )
        return figures_from_report(await execute(step.load_config(url, traffic), client, pids))

    def with_loadgen() -> dict[str, int]:
        return {**pids(), LOADGEN: os.getpid()}

    return await measured_steps("SwarmHub", cfg.steps(), with_loadgen, {LOADGEN}, one, progress)


@dataclass(frozen=True)
class BaselineRun:
    """A comparison whose raw side has run; SwarmHub's side follows on the hub's cluster."""

    config: BaselineConfig
    task_bytes: int
    raw: dict[str, Any]

    async def hub(
        self, client: SwarmClient, url: str, pids: PidSource, run_id: str, progress: bool
    ) -> dict[str, Any]:
        """Run SwarmHub's side: the same steps over the hub."""
        return await run_hub_side(client, url, self.config, pids, run_id, progress)

    def report(self, hub: dict[str, Any]) -> dict[str, Any]:
        """The report's `baseline` section from both sides."""
        return compare(self.config.steps(), self.raw, hub, self.config.as_dict(self.task_bytes))
