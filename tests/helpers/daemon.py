"""The real daemon as a subprocess, for the end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    def __init__(self, config: Path, task_path: Path, metrics: str, **environ: str) -> None:
        environment = dict(os.environ, PYTHONPATH=f"{task_path}:{TESTS}", **environ)
        #: Where its metrics server listens, as a URL prefix.
        self.url = f"http://{metrics}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "minion_daemon", "run", "-c", str(config)],
            env=environment,
            stderr=subprocess.PIPE,
            text=True,
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        _, errors = self.process.communicate(timeout=timeout)
        return self.process.returncode, errors
