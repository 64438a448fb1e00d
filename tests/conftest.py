"""Fixtures shared by every suite: a real PostgreSQL and a fresh database per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.postgres import Databases, Reusable, Server, run_server

from minion_daemon.backend import PgBackend


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


@pytest.fixture
def make_database(databases: Databases) -> Iterator[Callable[[int | None], str]]:
    """Create fresh databases at a schema version (None: empty); each is dropped after the test."""
    created: list[str] = []

    def make(version: int | None = 25) -> str:
        name = databases.create(version, _migrate)
        created.append(name)
        return databases.server.dsn(name)

    yield make
    for name in created:
        databases.drop(name)


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
def task_path(tmp_path: Path) -> Path:
    """A directory for PYTHONPATH holding a distribution whose minion_daemon.tasks entry
    points are some of the worker test tasks (helpers.worker_tasks, on PYTHONPATH too)."""
    info = tmp_path / "daemon_test_tasks-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: daemon-test-tasks\nVersion: 1.0\n")
    entry_points = "\n".join(
        f"{name} = helpers.worker_tasks:{name}" for name in ("add", "sleep", "stubborn")
    )
    (info / "entry_points.txt").write_text(f"[minion_daemon.tasks]\n{entry_points}\n")
    return tmp_path
