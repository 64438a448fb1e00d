"""The pytest plugin for testing tasks without a daemon (docs/testing.md).

Installing minion-daemon registers it (the ``pytest11`` entry point ``minion_daemon.testing``).
Its fixtures:

``minion``
    A :class:`Minion` on a database of the test session's, emptied before each test, with the
    installed ``minion_daemon.tasks`` entry points registered. ``minion.perform_jobs()`` runs
    the jobs as the daemon would (each in its task's mode, under its timeout), and
    ``minion.enqueued(...)`` lists what was enqueued.
``minion_eager``
    An :class:`EagerMinion`: each job's task runs at enqueue, in the test's process, with no
    database (see :mod:`minion_daemon.eager` for what that leaves out).
``minion_task_names``
    Which entry points both load: ``None`` (the default) for all; override it in a
    ``conftest.py`` to narrow that, ``[]`` for none.
``minion_dsn``
    The session's database: made on the server ``$MINION_DAEMON_TEST_DSN`` reaches and
    dropped at the end when that is set, else in a private PostgreSQL cluster made for the
    session in a temporary directory (:mod:`minion_daemon.embedded_pg`).

Loading the plugin imports nothing but pytest: the fixtures import what they need, so a run
that uses none of them pays nothing.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from minion_daemon.eager import EagerMinion
    from minion_daemon.minion import Minion

#: A libpq DSN of a server on which the plugin may create and drop a database.
DSN_VARIABLE: Final = "MINION_DAEMON_TEST_DSN"


@pytest.fixture(scope="session")
def minion_dsn() -> Iterator[str]:
    """The DSN of this test session's database, gone after the session."""
    name = f"minion_test_{os.getpid()}_{secrets.token_hex(4)}"
    server = os.environ.get(DSN_VARIABLE)
    if server:
        yield from _database_on(server, name)
    else:
        yield from _private_cluster(name)


def _database_on(server: str, name: str) -> Iterator[str]:
    from minion_daemon.backend.databases import create_database, drop_database
    from minion_daemon.errors import BackendError

    try:
        dsn = create_database(server, name)
    except BackendError as error:
        pytest.fail(
            f"{DSN_VARIABLE}: {error} (give a server where you may create databases)", pytrace=False
        )
    try:
        yield dsn
    finally:
        drop_database(server, name)


def _private_cluster(name: str) -> Iterator[str]:
    from minion_daemon.embedded_pg import EmbeddedDatabaseError, EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="minion-test-") as parent:
        # Run as root, the cluster runs as the postgres account, which must pass through here;
        # search only, and the cluster's own directory inside is 0700.
        os.chmod(parent, 0o711)  # noqa: S103
        cluster = EmbeddedPostgres(Path(parent) / "cluster", database=name)
        try:
            cluster.start()
        except EmbeddedDatabaseError as error:
            pytest.fail(f"{error}; or set {DSN_VARIABLE} to a server's DSN", pytrace=False)
        try:
            yield cluster.dsn
        finally:
            cluster.stop()


@pytest.fixture
def minion_task_names() -> Collection[str] | None:
    """The entry-point tasks ``minion`` and ``minion_eager`` register; ``None``: all."""
    return None


@pytest.fixture
def minion(minion_dsn: str, minion_task_names: Collection[str] | None) -> Iterator[Minion]:
    """A :class:`Minion` on the session's database, emptied, with the entry-point tasks."""
    from minion_daemon.backend import PgBackend
    from minion_daemon.minion import Minion
    from minion_daemon.tasks.discovery import load_into

    minion = Minion(PgBackend(minion_dsn, min_size=0))
    try:
        minion.reset(all=True)
        load_into(minion.tasks, minion_task_names)
        yield minion
    finally:
        minion.close()


@pytest.fixture
def minion_eager(minion_task_names: Collection[str] | None) -> EagerMinion:
    """An :class:`EagerMinion` with the entry-point tasks: tasks run at enqueue."""
    from minion_daemon.eager import EagerMinion

    return EagerMinion().load_tasks(minion_task_names)
