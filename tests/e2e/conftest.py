"""Fixtures of the end-to-end tests: the real daemon as a subprocess."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import Daemon, Settings, free_port, quick_settings, running_daemons


@pytest.fixture
def start(tmp_path: Path, task_path: Path, dsn: str) -> Iterator[Any]:
    """``start(environ=None, python=None, **sections)``: ``minion-daemon run`` with a config of test
    settings updated by ``sections``; returns the daemon and its config file."""

    def defaults() -> Settings:
        return quick_settings() | {
            "postgres": {"dsn": dsn},
            "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        }

    with running_daemons(tmp_path, task_path, defaults) as daemons:

        def start_daemon(
            environ: dict[str, str] | None = None, python: str = sys.executable, **sections: Any
        ) -> tuple[Daemon, Path]:
            daemon = daemons.start(sections, python=python, **(environ or {}))
            return daemon, daemon.config

        yield start_daemon
