"""The metrics process: ``/metrics``, ``/healthz`` and ``/readyz`` over HTTP.

The supervisor binds the listening socket before it forks anything (a port in use stops the
daemon at once, with the address in the message) and hands it to this process, which serves
it with a small threaded WSGI server until it is killed. Worker processes close their copy.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from minion_daemon.backend import PgBackend
from minion_daemon.errors import MinionError
from minion_daemon.metrics.collector import DatabaseCollector
from minion_daemon.sockets import listen

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from minion_daemon.config import Config

#: A supervisor whose heartbeat is older than this is reported unhealthy.
HEARTBEAT_LIMIT: Final = 30.0
#: The longest a scrape waits for a connection when the database is away.
CONNECT_TIMEOUT: Final = 2
#: A process's metric file starts with 8 bytes of header once its process has sized it.
_FILE_HEADER: Final = 8


class MetricsBindError(MinionError):
    """The metrics address cannot be listened on."""


def bind(address: str) -> socket.socket:
    """Listen on ``host:port`` (``[v6]:port`` too); raises :class:`MetricsBindError`."""
    try:
        return listen(address)
    except OSError as error:
        raise MetricsBindError(
            f"metrics.listen: cannot listen on {address}: {error.strerror or error}"
        ) from error


def run_metrics_process(config: Config, dsn: str, directory: Path, listener: socket.socket) -> int:
    """The body of the forked metrics process: serve until killed."""
    backend = PgBackend.from_settings(
        config.postgres,
        dsn,
        role="metrics",
        pooled=False,
        auto_migrate="off",
        max_connect_timeout=CONNECT_TIMEOUT,
    )
    timeout = config.metrics.query_timeout
    collector = DatabaseCollector(
        lambda: backend.observe(timeout), cache_seconds=config.metrics.cache_seconds
    )
    server = _Server(listener, metrics_app(collector, directory))
    server.serve_forever()
    return 0


class ProcessFiles(Collector):
    """The numbers every process of the daemon wrote to its files in ``directory``.

    prometheus-client's own reader fails on a file its process has created but not yet sized
    (prometheus/client_python#1199): one such file, of a worker starting or of one killed in
    that moment, turned every scrape into an HTTP 500. This reader leaves such files out.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        files = []
        for path in self.directory.glob("*.db"):
            try:
                if path.stat().st_size >= _FILE_HEADER:
                    files.append(str(path))
            except FileNotFoundError:  # its process ended and the supervisor removed it
                continue
        merged: Iterable[Metric] = MultiProcessCollector.merge(  # type: ignore[no-untyped-call]
            files, accumulate=True
        )
        return merged


def metrics_app(collector: DatabaseCollector, directory: Path) -> WSGIApplication:
    """The WSGI application of the three paths; any other answers 404."""
    registry = CollectorRegistry()
    registry.register(ProcessFiles(directory))
    registry.register(collector)
    exposition = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            age = time.time() - _supervisor_value(
                directory, "minion_supervisor_heartbeat_timestamp_seconds"
            )
            healthy = age < HEARTBEAT_LIMIT
            return _answer(start_response, healthy, f"supervisor heartbeat {age:.1f} s ago")
        if path == "/readyz":
            collector.refresh()
            booted = _supervisor_value(directory, "minion_worker_processes", state="booted")
            ready = not collector.unreachable and booted > 0
            database = "unreachable" if collector.unreachable else "reachable"
            return _answer(
                start_response, ready, f"database {database}, {booted:g} worker processes up"
            )
        if path == "/metrics":
            answer: Iterable[bytes] = exposition(environ, start_response)
            return answer
        # prometheus-client answers every path with the metrics: a probe or scrape config
        # with a mistyped path would pass unnoticed.
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: this server answers /metrics, /healthz and /readyz\n"]

    return app


def _answer(start_response: StartResponse, ok: bool, text: str) -> list[bytes]:
    status = "200 OK" if ok else "503 Service Unavailable"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [f"{'ok' if ok else 'not ok'}: {text}\n".encode()]


def _supervisor_value(directory: Path, name: str, **labels: str) -> float:
    """A sample the supervisor wrote; 0 when it has not yet."""
    for metric in ProcessFiles(directory).collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the daemon's log."""


class _Server(ThreadingMixIn, WSGIServer):
    """A WSGI server on a socket bound elsewhere; each request in a thread of its own, so a
    scrape waiting on the database never holds up a health check."""

    daemon_threads = True

    def __init__(self, listener: socket.socket, app: Callable[..., Any]) -> None:
        super().__init__(listener.getsockname()[:2], _QuietHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.server_name = "minion-daemon"
        self.server_port = listener.getsockname()[1]
        self.setup_environ()
        self.set_app(app)
