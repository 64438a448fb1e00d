"""Fixtures of the security tests: the real daemon with the tasks of helpers.security_tasks.

(The systemd unit's exposure score, at most 3.0, is checked by
tests/e2e/test_deployment.py::test_systemd_unit_exposure_is_ok; it is not repeated here.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.daemon import Daemon, Settings, add_distribution, running_daemons

TASKS = ("echo", "open_sockets")


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    """A PYTHONPATH entry whose distribution's minion_daemon.tasks entry points are the
    security tasks (helpers.security_tasks, importable from the tests directory)."""
    points = {name: f"helpers.security_tasks:{name}" for name in TASKS}
    return add_distribution(tmp_path, "security-test-tasks", points)


@pytest.fixture
def start_daemon(
    tmp_path: Path, task_path: Path, dsn: str
) -> Iterator[Callable[[Settings], Daemon]]:
    """``start_daemon(settings)``: ``minion-daemon run`` with exactly this configuration (JSON
    logs at debug level unless it says otherwise); stopped after the test if still running.

    It requests ``dsn`` (a test's settings name it, or another database) only so as to end
    before it: the daemons stop before the database is emptied for the next test.
    """

    def defaults() -> Settings:
        return {"logging": {"format": "json", "level": "debug"}}

    with running_daemons(tmp_path, task_path, defaults) as daemons:
        yield daemons.start
