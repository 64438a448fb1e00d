"""Fixtures of the security tests: the real daemon with the tasks of helpers.security_tasks.

(The systemd unit's exposure score, at most 3.0, is checked by
tests/e2e/test_deployment.py::test_systemd_unit_exposure_is_ok; it is not repeated here.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.daemon import Daemon

from minion_daemon import Minion
from minion_daemon.backend import PgBackend

TASKS = ("echo", "open_sockets")


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    """A PYTHONPATH entry whose distribution's minion_daemon.tasks entry points are the
    security tasks (helpers.security_tasks, importable from the tests directory)."""
    info = tmp_path / "security_test_tasks-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: security-test-tasks\nVersion: 1.0\n", encoding="utf-8"
    )
    points = "\n".join(f"{name} = helpers.security_tasks:{name}" for name in TASKS)
    (info / "entry_points.txt").write_text(
        f"[minion_daemon.tasks]\n{points}\n", encoding="utf-8"
    )
    return tmp_path


@pytest.fixture
def start_daemon(tmp_path: Path, task_path: Path) -> Iterator[Callable[[dict[str, Any]], Daemon]]:
    """``start_daemon(settings)``: ``minion-daemon run`` with exactly this configuration (JSON
    logs at debug level unless it says otherwise); killed after the test if still running."""
    daemons: list[Daemon] = []

    def start(settings: dict[str, Any]) -> Daemon:
        settings = {"logging": {"format": "json", "level": "debug"}, **settings}
        config = tmp_path / f"config-{len(daemons)}.yaml"
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        listen = settings.get("metrics", {}).get("listen", "127.0.0.1:9464")
        daemon = Daemon(config, task_path, listen)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        if daemon.process.returncode is None:
            daemon.process.kill()
            daemon.process.communicate()


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0))
    yield minion
    minion.close()
