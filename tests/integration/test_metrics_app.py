"""The metrics process's WSGI application, called in this process on a real database."""

from __future__ import annotations

from pathlib import Path
from wsgiref.util import setup_testing_defaults

from minion_daemon.backend import PgBackend
from minion_daemon.metrics.collector import DatabaseCollector
from minion_daemon.metrics.server import metrics_app


def _status(backend: PgBackend, directory: Path, path: str) -> str:
    app = metrics_app(DatabaseCollector(backend.observe, cache_seconds=0), directory)
    environ: dict[str, object] = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    answered: list[str] = []
    b"".join(app(environ, lambda status, headers, exc_info=None: answered.append(status)))
    return answered[0]


def test_a_scrape_reads_the_files_of_every_process(backend: PgBackend, tmp_path: Path) -> None:
    assert _status(backend, tmp_path, "/metrics") == "200 OK"


def test_a_file_its_process_has_not_sized_yet_does_not_fail_the_scrape(
    backend: PgBackend, tmp_path: Path
) -> None:
    """What a scrape finds while a worker process creates its first metric of a kind (as it
    boots, as it ends its first job), and for good after a worker killed in that moment (its
    counters are kept, see ``forget_process``): prometheus-client's own reader raised
    struct.error on such a file (prometheus/client_python#1199), an HTTP 500."""
    (tmp_path / "counter_4242.db").touch()
    assert _status(backend, tmp_path, "/metrics") == "200 OK"


def test_only_the_served_paths_answer(backend: PgBackend, tmp_path: Path) -> None:
    """Any other path answered with the metrics page, so a typo in a probe's path passed."""
    assert _status(backend, tmp_path, "/healthz").split()[0] in {"200", "503"}
    assert _status(backend, tmp_path, "/readyz").split()[0] in {"200", "503"}
    for path in ("/foo", "/", "/metrics/", "/favicon.ico", "/healthz/x"):
        assert _status(backend, tmp_path, path) == "404 Not Found", path
