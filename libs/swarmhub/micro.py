"""The NATS micro protocol (ADR-32): $SRV.PING|INFO|STATS answered with the standard JSON."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from swarmhub import subjects

PING_TYPE = "io.nats.micro.v1.ping_response"
INFO_TYPE = "io.nats.micro.v1.info_response"
STATS_TYPE = "io.nats.micro.v1.stats_response"
DEFAULT_QUEUE_GROUP = "q"


def new_instance_id() -> str:
    """A random service instance id, as nats.py micro makes them."""
    return secrets.token_hex(11)


@dataclass
class EndpointStats:
    """Counters of one endpoint, in the ADR-32 shape."""

    name: str
    subject: str
    queue_group: str | None
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time_ns: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] | None = None

    def record(self, elapsed_ns: int, error: str | None) -> None:
        """Count one handled request."""
        self.num_requests += 1
        self.processing_time_ns += elapsed_ns
        if error is not None:
            self.num_errors += 1
            self.last_error = error

    def info(self) -> dict[str, Any]:
        """ADR-32 endpoint info."""
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "metadata": self.metadata or None,
        }

    def stats(self) -> dict[str, Any]:
        """ADR-32 endpoint stats (`data`: endpoint-specific figures, null when none)."""
        avg = self.processing_time_ns // self.num_requests if self.num_requests else 0
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": self.num_requests,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "processing_time": self.processing_time_ns,
            "average_processing_time": avg,
            "data": self.data,
        }


@dataclass
class ServiceIdentity:
    """Who a service instance is."""

    name: str
    version: str
    description: str = ""
    instance_id: str = field(default_factory=new_instance_id)
    metadata: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)


class MicroResponder:
    """Answers discovery requests for one service instance."""

    def __init__(
        self,
        nc: NATS,
        identity: ServiceIdentity,
        endpoints: Callable[[], list[EndpointStats]],
        extra_stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.nc = nc
        self.identity = identity
        self._endpoints = endpoints
        self._extra_stats = extra_stats
        self._subs: list[Subscription] = []

    def _base(self, kind: str) -> dict[str, Any]:
        ident = self.identity
        return {
            "type": kind,
            "name": ident.name,
            "id": ident.instance_id,
            "version": ident.version,
            "metadata": ident.metadata,
        }

    def ping(self) -> dict[str, Any]:
        """ADR-32 ping response."""
        return self._base(PING_TYPE)

    def info(self) -> dict[str, Any]:
        """ADR-32 info response."""
        body = self._base(INFO_TYPE)
        body["description"] = self.identity.description
        body["endpoints"] = [e.info() for e in self._endpoints()]
        return body

    def stats(self) -> dict[str, Any]:
        """ADR-32 stats response, plus a `data` map of service-specific figures."""
        body = self._base(STATS_TYPE)
        started = datetime.fromtimestamp(self.identity.started, tz=UTC)
        body["started"] = started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body["endpoints"] = [e.stats() for e in self._endpoints()]
        if self._extra_stats:
            body["data"] = self._extra_stats()
        return body

    async def start(self) -> None:
        """Subscribe to the nine discovery subjects of this instance."""
        handlers = {"PING": self.ping, "INFO": self.info, "STATS": self.stats}
        for verb, build in handlers.items():

            async def answer(msg: Msg, build: Callable[[], dict[str, Any]] = build) -> None:
                if msg.reply:
                    await msg.respond(json.dumps(build()).encode())

            for subject in subjects.srv_subjects(
                verb, self.identity.name, self.identity.instance_id
            ):
                self._subs.append(await self.nc.subscribe(subject, cb=answer))

    async def stop(self) -> None:
        """Stop answering discovery requests."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
        self._subs.clear()
