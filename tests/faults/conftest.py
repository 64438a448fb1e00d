"""Fixtures of the fault tests: the real daemon, tuned to notice deaths in seconds.

Every fault test module is in the xdist group ``faults``: its tests run one after another in
one test process. The kill storm loads the machine more than anything else in the suite,
and the others time what they check (recovery, pickup after LISTEN is lost, a graceful stop
under load), so none of them runs beside another. The storm goes first (its ``slow``
estimate), the rest of the suite fills the other test processes meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import Daemon, Settings, add_distribution, running_daemons
from helpers.fault_tasks import ENTRY_POINTS


@pytest.fixture
def fault_task_path(task_path: Path) -> Path:
    """``task_path`` plus a distribution with the fault tests' tasks (helpers.fault_tasks)."""
    return add_distribution(task_path, "fault-test-tasks", ENTRY_POINTS)


Launch = Callable[..., Daemon]


@pytest.fixture
def launch(tmp_path: Path, fault_task_path: Path) -> Iterator[Launch]:
    """Start ``minion-daemon run`` on ``dsn`` with fault-test settings updated by ``sections``.

    Only ``record_run`` and ``sleep`` are loaded; metrics are off (nothing here scrapes them,
    and the supervisor's children are then exactly its workers); logs are JSON lines in
    ``Daemon.log``. Request it after the fixture of the database: fixtures end in reverse
    order, so the daemon then stops before its database is emptied or dropped.
    """

    def defaults() -> Settings:
        return {
            "workers": {
                "processes": 2,
                "jobs": 4,
                "dequeue_timeout": 1,
                "command_interval": 1,
                "heartbeat_interval": 1,
            },
            "repair": {"interval": 3600},
            "shutdown": {"graceful_timeout": 5},
            "tasks": {"entry_points": [*ENTRY_POINTS, "sleep"]},
            "metrics": {"enabled": False},
            "logging": {"format": "json"},
        }

    with running_daemons(tmp_path, fault_task_path, defaults) as daemons:

        def start(dsn: str, **sections: Any) -> Daemon:
            return daemons.start({"postgres": {"dsn": dsn}}, sections)

        yield start
