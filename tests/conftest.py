"""Fixtures shared by every suite: a real PostgreSQL and a fresh database per test."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.daemon import add_distribution
from helpers.pgbouncer import PgBouncer, running_pgbouncer
from helpers.postgres import Databases, Reusable, Server, run_server

from minion_daemon import Minion, logs
from minion_daemon.backend import PgBackend

#: The estimate of a test marked ``slow`` without ``seconds``.
SLOW_SECONDS = 10.0


@pytest.hookimpl(trylast=True)  # after xdist's own, which adds the group to each node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first, by the ``seconds`` of the ``slow`` marker: under xdist the long tests
    then start at once, and the short ones fill in around them instead of waiting for the
    long ones to become the tail of the run. (An xdist group goes where its first test goes.)

    In an xdist test process, also refuse to run when a test lost its ``xdist_group``: the
    tests of a group must never overlap, and xdist drops groups silently (pytest 9.2).
    """

    def estimate(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        return 0.0 if marker is None else float(marker.kwargs.get("seconds", SLOW_SECONDS))

    items.sort(key=estimate, reverse=True)  # stable: collection order among equals
    if getattr(config.option, "loadgroup", False):
        for item in items:
            groups = [str(mark.args[0]) for mark in item.iter_markers("xdist_group")]
            if groups and not (len(groups) == 1 and item.nodeid.endswith(f"@{groups[0]}")):
                raise RuntimeError(
                    f"{item.nodeid}: xdist_group {groups} not applied (one group per test;"
                    " pytest-dev/pytest-xdist#1386 for pytest 9.2)"
                )


@pytest.fixture
def figures(record_property: Callable[[str, object], None]) -> Callable[[str], None]:
    """``figures(text)``: report what a test measured, in the summary of the run (and at
    once with ``-s``). Under xdist a test's output is not shown, but its properties are."""

    def report(text: str) -> None:
        print(f"\n{text}")
        record_property("figures", text)

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "figures"
    ]
    if found:
        terminalreporter.write_sep("-", "figures")
        for line in sorted(found):
            terminalreporter.write_line(line)


def _migrate(dsn: str, version: int) -> None:
    backend = PgBackend(dsn, pooled=False)
    try:
        backend.migrate(version)
    finally:
        backend.close()


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    with run_server() as databases:
        yield databases


@pytest.fixture(scope="session")
def pg_server(databases: Databases) -> Server:
    return databases.server


@pytest.fixture(scope="session")
def pgbouncer(pg_server: Server) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction pooling mode in front of the test server (docs/pgbouncer.md)."""
    with running_pgbouncer(pg_server) as bouncer:
        yield bouncer


def _databases_made(databases: Databases) -> Iterator[Callable[[int | None], str]]:
    created: list[str] = []

    def make(version: int | None = 25) -> str:
        name = databases.create(version, _migrate)
        created.append(name)
        return databases.server.dsn(name)

    yield make
    for name in created:
        databases.drop(name)


@pytest.fixture
def make_database(databases: Databases) -> Iterator[Callable[[int | None], str]]:
    """Create fresh databases at a schema version (None: empty); each is dropped after the test."""
    yield from _databases_made(databases)


@pytest.fixture(scope="module")
def make_module_database(databases: Databases) -> Iterator[Callable[[int | None], str]]:
    """``make_database`` for module-scoped fixtures: each is dropped after the module."""
    yield from _databases_made(databases)


@pytest.fixture(scope="session")
def make_session_database(databases: Databases) -> Iterator[Callable[[int | None], str]]:
    """``make_database`` for session-scoped fixtures, such as those of state a process sets
    once (Django's settings): each is dropped at the end of the run."""
    yield from _databases_made(databases)


@pytest.fixture(scope="session")
def _reusable(databases: Databases) -> Reusable:
    return Reusable(databases, lambda: databases.create(25, _migrate))


@pytest.fixture
def dsn(_reusable: Reusable) -> Iterator[str]:
    """An empty database at the latest schema (25), emptied again after the test.

    Tests that change the schema itself may use it too (it is then dropped after them), but
    those that need a particular version or an empty database use ``make_database``.
    """
    yield _reusable.acquire()
    _reusable.release()


@pytest.fixture
def backend(dsn: str) -> Iterator[PgBackend]:
    backend = PgBackend(dsn, min_size=0, max_size=2)
    yield backend
    backend.close()


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    """A Minion on ``dsn``, beside the process under test."""
    minion = Minion(PgBackend(dsn, min_size=0))
    yield minion
    minion.close()


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    """A directory for PYTHONPATH holding a distribution whose minion_daemon.tasks entry
    points are some of the worker test tasks (helpers.worker_tasks, on PYTHONPATH too)."""
    points = {name: f"helpers.worker_tasks:{name}" for name in ("add", "sleep", "stubborn")}
    return add_distribution(tmp_path, "daemon-test-tasks", points)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The daemon's logging (JSON, level info) into a buffer; the root logger as it was after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
