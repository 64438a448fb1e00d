"""Fixtures of the fault tests: the real daemon, tuned to notice deaths in seconds.

Every fault test module is in the xdist group ``faults``: its tests run one after another in
one test process. The kill storm loads the machine more than anything else in the suite,
and the others time what they check (recovery, pickup after LISTEN is lost, a graceful stop
under load), so none of them runs beside another. The storm goes first (its ``slow``
estimate), the rest of the suite fills the other test processes meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.daemon import Daemon
from helpers.fault_tasks import ENTRY_POINTS


@pytest.fixture
def fault_task_path(task_path: Path) -> Path:
    """``task_path`` plus a distribution with the fault tests' tasks (helpers.fault_tasks)."""
    info = task_path / "fault_test_tasks-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fault-test-tasks\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[minion_daemon.tasks]\n{lines}\n")
    return task_path


Launch = Callable[..., Daemon]


@pytest.fixture
def launch(tmp_path: Path, fault_task_path: Path) -> Iterator[Launch]:
    """Start ``minion-daemon run`` on ``dsn`` with fault-test settings updated by ``sections``.

    Only ``record_run`` and ``sleep`` are loaded; metrics are off (nothing here scrapes them,
    and the supervisor's children are then exactly its workers); logs are JSON lines in
    ``Daemon.log``. Request it after the fixture of the database: fixtures end in reverse
    order, so the daemon then stops before its database is emptied or dropped.
    """
    daemons: list[Daemon] = []

    def start(dsn: str, **sections: Any) -> Daemon:
        settings: dict[str, Any] = {
            "postgres": {"dsn": dsn},
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
        for name, values in sections.items():
            settings.setdefault(name, {}).update(values)
        config = tmp_path / f"config-{len(daemons)}.yaml"
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        log = tmp_path / f"daemon-{len(daemons)}.log"
        daemon = Daemon(config, fault_task_path, None, log=log)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        _stop(daemon)


def _stop(daemon: Daemon) -> None:
    """A fast stop (QUIT), while the database is still there for the workers to record what
    they killed; KILL if that hangs. A KILL first would leave the workers to stop on their
    own, after the database they record into was dropped."""
    if daemon.process.poll() is not None:
        return
    daemon.signal(signal.SIGQUIT)
    try:
        daemon.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.process.wait(timeout=10)
