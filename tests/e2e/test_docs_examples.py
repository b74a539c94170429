"""Every code block of the README runs as written, in order, against a real local cluster.

A block is marked by the comment before it: `<!-- example:sh -->` (each line a command),
`<!-- example:script -->` (a Python script), `<!-- example:file NAME -->` (written to NAME),
`<!-- example:background -->` (a long-running command, e.g. a worker), `<!-- example:text -->`
(output or a reference, not run), `<!-- readme:run|test -->` (the set-up commands, run by
test_readme). Blocks in docs/ run when marked the same way.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmhub.embedded import ClusterConfig, LocalCluster, free_port, stop_process
from tests.conftest import REPO, wait_for_agents

BLOCK = re.compile(
    r"(?:<!-- (?P<marker>(?:example|readme):[^>]*?) -->\s*)?^```(?P<lang>\S*)\n(?P<body>.*?)^```",
    re.S | re.M,
)


@dataclass(frozen=True)
class Block:
    """One fenced code block and its marker."""

    source: str
    line: int
    marker: str | None
    body: str

    @property
    def kind(self) -> str:
        """example:KIND, or the readme marker."""
        return (self.marker or "").split(":", 1)[-1].split()[0] if self.marker else ""


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, in order."""
    text = path.read_text()
    return [
        Block(path.name, text.count("\n", 0, m.start("body")), m.group("marker"), m.group("body"))
        for m in BLOCK.finditer(text)
    ]


@dataclass(frozen=True)
class User:
    """A user's project folder, their environment, and an operator URL for the test's checks."""

    home: Path
    env: dict[str, str]
    operator_url: str


def test_every_readme_block_is_marked() -> None:
    unmarked = [f"README.md:{b.line}" for b in blocks(REPO / "README.md") if b.marker is None]
    assert not unmarked, f"mark these blocks (example:sh|script|file|background|text): {unmarked}"


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    """A user's project folder next to a running local cluster."""
    home = tmp_path_factory.mktemp("user")
    cluster = LocalCluster(
        ClusterConfig(data_dir=home / ".data", port=free_port(), workers=1, agent_slots=2),
        on_event=lambda text: None,
    ).start()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "SWARMHUB_DATA_DIR": str(home / ".data"),
        "SWARMHUB_NATS_URL": cluster.server_url,
    }
    try:
        asyncio.run(wait_for_agents(cluster.url, 1, timeout=60))
        yield User(home, env, cluster.url)
    finally:
        cluster.stop()


def run_as(user: User, command: list[str], what: str) -> None:
    """Run one command in the user's folder and environment; fail naming `what` if it fails."""
    done = subprocess.run(
        command,
        cwd=user.home,
        env=user.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{what} failed: {done.stderr}"


def run_blocks(found: list[Block], user: User) -> int:
    """Run the marked blocks in order, as `user`; returns how many ran."""
    home, env = user.home, user.env
    background: list[subprocess.Popen[bytes]] = []
    ran = 0
    agents = 1
    try:
        for block in found:
            where = f"{block.source}:{block.line}"
            if block.kind == "file":
                name = (block.marker or "").split()[1]
                (home / name).write_text(block.body)
            elif block.kind == "background":
                for line in filter(None, (ln.strip() for ln in block.body.splitlines())):
                    background.append(subprocess.Popen(shlex.split(line), cwd=home, env=env))
                    agents += 1
                    asyncio.run(wait_for_agents(user.operator_url, agents, timeout=60))
            elif block.kind == "sh":
                for line in block.body.splitlines():
                    if not line.strip() or line.lstrip().startswith("#"):
                        continue
                    run_as(user, ["bash", "-c", line], f"{where}: `{line}`")
            elif block.kind == "script":
                script = home / f"example_{block.line}.py"
                script.write_text(block.body)
                run_as(user, [sys.executable, script.name], f"{where}: script")
            else:
                continue
            ran += 1
    finally:
        for proc in background:
            stop_process(proc, timeout=30)  # type: ignore[arg-type]
    return ran


def test_the_readme_examples_run_as_written(user: User) -> None:
    assert run_blocks(blocks(REPO / "README.md"), user) >= 6


def test_marked_docs_examples_run(user: User) -> None:
    found = [b for doc in sorted((REPO / "docs").glob("*.md")) for b in blocks(doc)]
    run_blocks([b for b in found if b.marker and b.kind != "text"], user)
