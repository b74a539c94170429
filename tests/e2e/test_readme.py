"""The README's commands are the truth: run them as written; CI uses the test one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from swarmhub.client import SwarmClient
from swarmhub.embedded import free_port
from swarmhub.schemas import ResultStatus, Task
from tests.conftest import REPO, wait_for_agents


def readme_command(marker: str) -> str:
    """The single command in the fenced block right after `<!-- readme:MARKER -->`."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- readme:{marker} -->\s*```sh\n(.+?)\n```", text, re.S)
    assert match, f"README.md has no block marked readme:{marker}"
    lines = [ln for ln in match.group(1).splitlines() if ln.strip()]
    assert len(lines) == 1, f"readme:{marker} must hold exactly one command, not {lines}"
    return lines[0].strip()


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    commands = [ln.strip() for ln in ci if ln.strip() and not ln.lstrip().startswith("#")]
    assert readme_command("test") in commands


def make_clone(dest: Path) -> Path:
    """A copy of the working tree as git sees it (tracked plus untracked, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        target = dest / rel
        if src.is_symlink():  # e.g. libs/swarmhub/task_router -> ../../services/task_router
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.readlink(src))
            continue
        if not src.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def test_readme_run_command_starts_a_working_cluster_and_stops_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = readme_command("run")
    clone = make_clone(tmp_path / "clone")
    # As a user in the project folder: the client finds the cluster's credentials there.
    monkeypatch.setenv("SWARMHUB_DATA_DIR", str(clone / ".data"))
    url = f"nats://127.0.0.1:{free_port()}"
    env = {**os.environ, "SWARMHUB_NATS_URL": url}
    env.pop("VIRTUAL_ENV", None)
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    seen: set[int] = set()
    try:
        # Installing the fresh virtual environment dominates this wait.
        asyncio.run(wait_for_agents(url, 2, timeout=600))
        seen = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert len(seen) >= 6, "expected nats-server and five service processes"

        async def one_task() -> None:
            async with await SwarmClient.connect(url) as client:
                result = await client.run(Task(capability="echo", payload={"x": 1}), timeout=30)
                assert result.status is ResultStatus.SUCCEEDED
                assert result.output == {"x": 1}

        asyncio.run(one_task())
        # Ctrl-C in a terminal sends SIGINT to the foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in seen):
            assert time.monotonic() < deadline, "processes left behind after SIGINT"
            time.sleep(0.1)
    finally:
        log.close()
        if proc.poll() is None:
            # Failed or timed out before the Ctrl-C: stop the whole session this test started
            # (its group id is the shell's PID), gracefully first, so no cluster is left behind.
            seen |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pid in seen:
            if psutil.pid_exists(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    output = (tmp_path / "run.log").read_text()
    assert "NATS URL: " + url in output
    assert "per-role credentials: " in output
    assert "stopped in" in output
    # Secure by default: the credentials are private, and no password reached the output or logs
    creds = clone / ".data" / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    passwords = [u["password"] for u in json.loads(creds.read_text())["users"]]
    logs = [output, *(p.read_text() for p in (clone / ".data" / "logs").glob("*.log"))]
    assert not [p for p in passwords if any(p in text for text in logs)]


@pytest.mark.parametrize("marker", ["run", "test"])
def test_readme_commands_are_make_targets(marker: str) -> None:
    target = readme_command(marker).split()[1]
    assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.M)
