"""The HTTP side of a service: /metrics, /healthz (the process is alive), /readyz (it can serve).

Served by a daemon thread, so it answers while the event loop is busy; readiness is therefore
read from plain attributes of the service (see `Service.readiness`), never awaited.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

Readiness = Callable[[], str | None]
"""Why the process cannot serve right now (one line), or None when it can."""

StartResponse = Callable[..., Any]

READY = "ready"
ALIVE = "alive"


def not_started() -> str | None:
    """The readiness of a process whose service has not been attached yet."""
    return "starting: the service has not started"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: probes come every few seconds."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _text(start_response: StartResponse, status: str, body: str) -> Iterable[bytes]:
    data = (body + "\n").encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]


def make_app(readiness: Readiness) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app: /healthz and /readyz as above, anything else the Prometheus exposition."""
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _text(start_response, "200 OK", ALIVE)
        if path == "/readyz":
            try:
                reason = readiness()
            except Exception as exc:  # a probe must answer, even when the check itself breaks
                reason = f"readiness check failed: {type(exc).__name__}"
            if reason is None:
                return _text(start_response, "200 OK", READY)
            return _text(start_response, "503 Service Unavailable", reason.splitlines()[0])
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    return app


def serve(host: str, port: int, readiness: Readiness) -> WSGIServer:
    """Serve /metrics, /healthz and /readyz on host:port from a daemon thread."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class: type[WSGIServer] = type(
        "_Server", (_ThreadingServer,), {"address_family": family}
    )
    server: WSGIServer = make_server(host, port, make_app(readiness), server_class, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="http-probes", daemon=True).start()
    return server
