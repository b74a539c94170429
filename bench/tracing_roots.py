"""Micro-benchmark: a client's tracing per submit at 1 % sampling, new traces decided by the SDK
and by `swarmhub.tracing` (its ratio rule, the SDK only for kept roots).

    .venv/bin/python bench/tracing_roots.py [rounds]

Prints µs per submit (the send span and its headers) for tracing off and for each way of
deciding; compare the ratios of one run (the machine is shared).
"""

from __future__ import annotations

import os
import sys
import timeit

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from swarmhub import tracing
from swarmhub.bus import make_headers

TEMPLATE = "hub.task.submit.{tenant}.{capability}.{priority}"


def submit() -> None:
    """The tracing a client's submit does: its PRODUCER span and the message's headers."""
    attrs = tracing.task_attributes("t1", "echo") if tracing.switch.on else None
    with tracing.send_span(TEMPLATE, tracing.SpanKind.PRODUCER, "t1", 100, "hub.t", attrs):
        make_headers("t1")


def per_submit(rounds: int) -> float:
    """The best of 5 timings of `rounds` submits, in µs per submit."""
    return min(timeit.repeat(submit, number=rounds, repeat=5)) / rounds * 1e6


def main(rounds: int) -> None:
    """Time tracing off, then on at 1 % with roots decided by the SDK, then here."""
    os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
    os.environ["OTEL_TRACES_SAMPLER_ARG"] = "0.01"
    sampling = tracing.ratio_sampling()
    trace.set_tracer_provider(TracerProvider(**sampling))  # kept spans are made, not exported
    tracing.enable(False)
    print(f"tracing off                 {per_submit(rounds):6.2f} µs per submit")
    tracing.enable(True)
    print(f"on, 1 %, roots by the SDK   {per_submit(rounds):6.2f} µs per submit")
    tracing.enable(True, roots=sampling["id_generator"])
    print(f"on, 1 %, roots decided here {per_submit(rounds):6.2f} µs per submit")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
