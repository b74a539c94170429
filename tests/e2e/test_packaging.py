"""The wheel is one `swarmhub` package; it installs without extras and the client works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

from tests.conftest import REPO

CHECK = textwrap.dedent(
    """
    import pathlib, sys
    import swarmhub
    from swarmhub import App, SwarmClient, TaskFailed
    from swarmhub.sync import connect
    import swarmhub.agent_worker.service, swarmhub.task_router.service
    import swarmhub.swarm_coordinator.service, swarmhub.cache_service.service

    heavy = [m for m in ("psutil", "matplotlib", "hdrh", "opentelemetry.sdk") if m in sys.modules]
    assert not heavy, f"the client imported optional modules: {heavy}"
    typed = pathlib.Path(swarmhub.__file__).with_name("py.typed")
    assert typed.exists(), "py.typed is missing from the wheel"
    print("ok", swarmhub.__version__)
    """
)


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output if it fails."""
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_installs_without_extras_and_imports_the_client(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, REPO)
    (wheel,) = wheels.glob("swarmhub-*.whl")
    # One installed package: the services and the load generator live under `swarmhub`.
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"swarmhub"}, sorted(tops)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"swarmhub/task_router/__main__.py", "swarmhub/loadgen/cli.py"} <= names
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt", wheel)
    # Run from elsewhere, so the repository's folders cannot stand in for the installed package.
    assert run(python, "-c", CHECK, cwd=tmp_path).stdout.startswith("ok ")
    version = run(venv / "bin" / "swarmhub", "--version", cwd=tmp_path)
    assert version.stdout.strip().startswith("swarmhub ")
    # A command that needs an extra says which one instead of a traceback.
    load = subprocess.run(
        [venv / "bin" / "swarmhub", "load", "--duration", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert load.returncode == 2, load.stderr
    assert "pip install 'swarmhub[load]'" in load.stderr
