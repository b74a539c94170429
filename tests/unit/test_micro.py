"""ADR-32 response shapes, without a server."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from nats.micro.service import ServiceInfo, ServiceStats

from swarmhub.micro import EndpointStats, MicroResponder, ServiceIdentity


def responder() -> tuple[MicroResponder, EndpointStats]:
    ep = EndpointStats("get", "hub.cache.get", "q")
    ident = ServiceIdentity("cache", "0.1.0", "a cache")
    extra: dict[str, Any] = {"entries": 3}
    return MicroResponder(None, ident, lambda: [ep], lambda: extra), ep  # type: ignore[arg-type]


def test_ping_info_stats_types_and_identity() -> None:
    micro, _ = responder()
    ping, info, stats = micro.ping(), micro.info(), micro.stats()
    assert ping["type"] == "io.nats.micro.v1.ping_response"
    assert info["type"] == "io.nats.micro.v1.info_response"
    assert stats["type"] == "io.nats.micro.v1.stats_response"
    assert ping["id"] == info["id"] == stats["id"]
    assert len(ping["id"]) == 22
    assert info["endpoints"] == [
        {"name": "get", "subject": "hub.cache.get", "queue_group": "q", "metadata": None}
    ]
    assert stats["started"].endswith("Z")
    assert stats["data"] == {"entries": 3}


def test_endpoint_stats_average_in_nanoseconds() -> None:
    micro, ep = responder()
    ep.record(1000, None)
    ep.record(3000, "500:boom")
    (row,) = micro.stats()["endpoints"]
    assert row["num_requests"] == 2
    assert row["num_errors"] == 1
    assert row["last_error"] == "500:boom"
    assert row["processing_time"] == 4000
    assert row["average_processing_time"] == 2000


def test_stats_parse_with_nats_py_own_parser() -> None:
    """nats-py's `nats.micro` reads our $SRV.STATS and $SRV.INFO replies (ADR-32 fields)."""
    micro, ep = responder()
    ep.record(1500, "503:busy")
    # A start time on a whole second must still carry the fraction the parser expects.
    micro.identity.started = 1_700_000_000.0
    stats = ServiceStats.from_dict(json.loads(json.dumps(micro.stats())))
    (endpoint,) = stats.endpoints
    assert (endpoint.name, endpoint.num_requests, endpoint.num_errors) == ("get", 1, 1)
    assert endpoint.last_error == "503:busy" and endpoint.data is None
    assert stats.started == datetime(2023, 11, 14, 22, 13, 20)  # naive UTC, as nats-py reads it
    info = ServiceInfo.from_dict(json.loads(json.dumps(micro.info())))
    assert [e.subject for e in info.endpoints] == ["hub.cache.get"]
