"""Fixtures of the end-to-end tests: the real daemon as a subprocess, and a Minion beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.daemon import Daemon, free_port

from minion_daemon import Minion
from minion_daemon.backend import PgBackend


@pytest.fixture
def start(tmp_path: Path, task_path: Path, dsn: str) -> Iterator[Any]:
    """Start ``minion-daemon run`` with a config of test settings updated by ``sections``."""
    daemons: list[Daemon] = []

    def start_daemon(environ: dict[str, str] | None = None, **sections: Any) -> tuple[Daemon, Path]:
        settings: dict[str, Any] = {
            "postgres": {"dsn": dsn},
            "workers": {
                "processes": 2,
                "dequeue_timeout": 1,
                "command_interval": 1,
                "heartbeat_interval": 1,
            },
            "repair": {"interval": 3600},
            "shutdown": {"graceful_timeout": 5},
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        }
        for name, values in sections.items():
            settings.setdefault(name, {}).update(values)
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        daemon = Daemon(config, task_path, settings["metrics"]["listen"], **(environ or {}))
        daemons.append(daemon)
        return daemon, config

    yield start_daemon
    for daemon in daemons:
        if daemon.process.returncode is None:
            daemon.process.kill()
            daemon.process.communicate()


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0))
    yield minion
    minion.close()
