"""The real daemon as a subprocess, for the end-to-end and fault tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

#: The xdist group of the tests whose daemon listens on the default metrics address,
#: 127.0.0.1:9464: one at a time, or the second would find the port taken.
DEFAULT_METRICS_PORT = "metrics_default_port"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
        **environ: str,
    ) -> None:
        environment = dict(os.environ, PYTHONPATH=f"{task_path}:{TESTS}", **environ)
        #: Where its metrics server listens, as a URL prefix.
        self.url = f"http://{metrics}"
        self.log = log
        handle = None if log is None else log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "minion_daemon", "run", "-c", str(config)],
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
