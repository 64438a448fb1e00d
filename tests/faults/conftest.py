"""Fixtures of the fault tests: the real daemon, tuned to notice deaths in seconds.

Every fault test module is in the xdist group ``faults``: its tests run one after another in
one test process. The kill storm loads the machine more than anything else in the suite,
and the others time what they check (recovery, pickup after LISTEN is lost, a graceful stop
under load), so none of them runs beside another. The storm goes first (its ``slow``
estimate), the rest of the suite fills the other test processes meanwhile.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import (
    Daemon,
    Settings,
    add_distribution,
    quick_settings,
    running_daemons,
)
from helpers.fault_tasks import ENTRY_POINTS
from helpers.postgres import Server, throwaway_cluster
from psycopg import sql


@pytest.fixture(scope="package")
def cluster() -> Iterator[Server]:
    """A private cluster (initdb/pg_ctl) for the tests that restart PostgreSQL or cut every
    session, which would break the other tests on the shared server; one for them all."""
    server = throwaway_cluster()
    if server is None:
        pytest.fail("these tests need initdb and pg_ctl (Debian's postgresql package)")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cluster_dsn(cluster: Server) -> str:
    """A new, empty database of the test's own on the private cluster."""
    name = f"faults_{secrets.token_hex(4)}"
    with cluster.admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return cluster.dsn(name)


@pytest.fixture
def fault_task_path(task_path: Path) -> Path:
    """``task_path`` plus a distribution with the fault tests' tasks (helpers.fault_tasks)."""
    return add_distribution(task_path, "fault-test-tasks", ENTRY_POINTS)


Launch = Callable[..., Daemon]


@pytest.fixture
def launch(tmp_path: Path, fault_task_path: Path) -> Iterator[Launch]:
    """Start ``minion-daemon run`` on ``dsn`` with fault-test settings updated by ``sections``.

    Only ``record_run`` and ``sleep`` are loaded; metrics and the admin UI are off (nothing
    here uses them, and the supervisor's children are then exactly its workers); logs are JSON
    lines in ``Daemon.log``. Request it after the fixture of the database: fixtures end in reverse
    order, so the daemon then stops before its database is emptied or dropped.
    """

    def defaults() -> Settings:
        settings = quick_settings() | {
            "tasks": {"entry_points": [*ENTRY_POINTS, "sleep"]},
            "metrics": {"enabled": False},
            "admin": {"enabled": False},
            "logging": {"format": "json"},
        }
        settings["workers"]["jobs"] = 4
        return settings

    with running_daemons(tmp_path, fault_task_path, defaults) as daemons:

        def start(dsn: str, **sections: Any) -> Daemon:
            return daemons.start({"postgres": {"dsn": dsn}}, sections)

        yield start
