"""The micro-benchmarks in bench/ run and print a figure per line (their figures are not judged)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize(("script", "lines"), [("waits.py", 5), ("tracing_roots.py", 3)])
def test_a_micro_benchmark_prints_its_figures(script: str, lines: int) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "200"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = re.findall(r"\d+\.\d+ µs\b", done.stdout)
    assert len(figures) == lines, done.stdout
