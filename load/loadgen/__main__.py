"""`python -m swarmhub.loadgen load|bench ...`: the two subcommands without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from swarmhub.loadgen.cli import add_bench_parser, add_load_parser, run_bench, run_load


def build_parser() -> argparse.ArgumentParser:
    """A parser with the `load` and `bench` subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m swarmhub.loadgen", description="SwarmHub load tools."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_load_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run one subcommand; returns its exit code."""
    args = build_parser().parse_args(argv)
    return run_load(args) if args.command == "load" else run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
