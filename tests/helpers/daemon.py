"""The real daemon as a subprocess, for the end-to-end, fault and security tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from minion_daemon.config import MetricsConfig

TESTS = Path(__file__).resolve().parents[1]

#: The xdist group of the tests whose daemon listens on the default metrics address,
#: 127.0.0.1:9464: one at a time, or the second would find the port taken.
DEFAULT_METRICS_PORT = "metrics_default_port"

#: A daemon configuration, section by section.
Settings = dict[str, dict[str, Any]]


def quick_settings() -> Settings:
    """What the e2e and fault tests' daemons share: two worker processes that wait for jobs,
    heartbeat and read their inbox every second; no repair but the first; 5 s to stop."""
    return {
        "workers": {
            "processes": 2,
            "dequeue_timeout": 1,
            "command_interval": 1,
            "heartbeat_interval": 1,
        },
        "repair": {"interval": 3600},
        "shutdown": {"graceful_timeout": 5},
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def add_distribution(path: Path, name: str, entry_points: Mapping[str, str]) -> Path:
    """Make ``path`` (a PYTHONPATH entry) hold an installed distribution ``name`` whose
    ``minion_daemon.tasks`` entry points are ``entry_points`` (``name = module:function``)."""
    info = path / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    lines = "".join(f"{task} = {target}\n" for task, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[minion_daemon.tasks]\n{lines}", encoding="utf-8")
    return path


class Daemon:
    """``minion-daemon run -c CONFIG``; its stderr goes to a pipe, or to ``log`` when given
    (a long run logs more than a pipe holds, and a full pipe would stall the daemon)."""

    def __init__(
        self,
        config: Path,
        task_path: Path,
        metrics: str | None,
        *,
        log: Path | None = None,
        python: str = sys.executable,
        **environ: str,
    ) -> None:
        environment = dict(os.environ, PYTHONPATH=f"{task_path}:{TESTS}", **environ)
        self.config = config
        #: Where its metrics server listens, as a URL prefix.
        self.url = f"http://{metrics}"
        self.log = log
        handle = None if log is None else log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [python, "-m", "minion_daemon", "run", "-c", str(config)],
            env=environment,
            stderr=subprocess.PIPE if handle is None else handle,
            text=True,
        )
        if handle is not None:
            handle.close()  # the child holds its own copy

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        _, errors = self.process.communicate(timeout=timeout)
        if self.log is not None:
            errors = self.log.read_text(encoding="utf-8")
        return self.process.returncode, errors

    def stop(self) -> None:
        """A fast stop (QUIT), while the database is still there for the workers to record
        what they killed; KILL if that hangs. A KILL first would leave the workers to stop on
        their own, after the database they record into was emptied or dropped."""
        if self.process.poll() is not None:
            return
        self.signal(signal.SIGQUIT)
        try:
            self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.communicate(timeout=10)


class Daemons:
    """Daemons of one test, each configured by ``defaults()`` updated section by section
    with what :meth:`start` is given; config and log files go to ``directory``."""

    def __init__(
        self, directory: Path, task_path: Path, defaults: Callable[[], Settings]
    ) -> None:
        self.directory = directory
        self.task_path = task_path
        self.defaults = defaults
        self.started: list[Daemon] = []

    def start(
        self,
        *updates: Mapping[str, Mapping[str, Any]],
        python: str = sys.executable,
        **environ: str,
    ) -> Daemon:
        """Start a daemon (run by ``python``) with the defaults updated by each of ``updates``
        in turn, section by section, and ``environ`` added to its environment."""
        settings = self.defaults()
        # The admin UI's default port is one for the whole machine: tests that run at once
        # get a free port each unless they say otherwise.
        settings.setdefault("admin", {}).setdefault("listen", f"127.0.0.1:{free_port()}")
        for sections in updates:
            for name, values in sections.items():
                settings.setdefault(name, {}).update(values)
        number = len(self.started)
        config = self.directory / f"config-{number}.yaml"
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        log = self.directory / f"daemon-{number}.log"
        address = _metrics_address(settings)
        daemon = Daemon(config, self.task_path, address, log=log, python=python, **environ)
        self.started.append(daemon)
        return daemon


@contextlib.contextmanager
def running_daemons(
    directory: Path, task_path: Path, defaults: Callable[[], Settings]
) -> Iterator[Daemons]:
    """:class:`Daemons` whose daemons are stopped (:meth:`Daemon.stop`) at the end. A fixture
    using it must come after the fixture of the database, so that it ends before it."""
    daemons = Daemons(directory, task_path, defaults)
    try:
        yield daemons
    finally:
        for daemon in daemons.started:
            daemon.stop()


def _metrics_address(settings: Settings) -> str | None:
    metrics = settings.get("metrics", {})
    if metrics.get("enabled", True) is False:
        return None
    return str(metrics.get("listen", MetricsConfig().listen))
