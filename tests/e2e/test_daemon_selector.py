"""The supervisor's wait has no 1,024-descriptor ceiling: ``select(2)`` cannot watch a
descriptor numbered 1024 or above, and a supervisor started with many open files (inherited,
or opened by task modules' imports) gets its pipes numbered past it.

The descriptors held are closed in every child, so that what is tested is the supervisor's own
wait: its signal pipe and the workers' liveness pipes, numbered above 1023.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from helpers.daemon import TESTS, quick_settings
from helpers.waiting import wait_until

from minion_daemon import Minion

#: Open this many files before the supervisor starts, so that its pipes come after them.
HELD = 1100

#: ``minion-daemon run -c CONFIG`` in a process already holding HELD descriptors.
LAUNCH = f"""
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
held = [os.open(os.devnull, os.O_RDONLY) for _ in range({HELD})]

def leave():
    while held:  # emptied in a worker, so its own children close nothing
        os.close(held.pop())

os.register_at_fork(after_in_child=leave)
from minion_daemon.cli import main
sys.exit(main(["run", "-c", sys.argv[1]]))
"""


def _pipes_above_1023(pid: int) -> list[int]:
    descriptors = Path(f"/proc/{pid}/fd")
    return [
        int(fd.name)
        for fd in descriptors.iterdir()
        if int(fd.name) >= 1024 and os.readlink(fd).startswith("pipe:")
    ]


def test_the_supervisor_watches_pipes_numbered_above_1023(
    tmp_path: Path, task_path: Path, dsn: str, minion: Minion
) -> None:
    settings = quick_settings() | {
        "postgres": {"dsn": dsn},
        "metrics": {"enabled": False},
        "admin": {"enabled": False},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    log = tmp_path / "daemon.log"
    environment = dict(os.environ, PYTHONPATH=f"{task_path}:{TESTS}")
    with log.open("w", encoding="utf-8") as handle:
        daemon = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(config)], env=environment, stderr=handle
        )
    try:
        # Booted: the supervisor read each worker's first ping from its liveness pipe.
        wait_until(lambda: log.read_text().count('"worker.booted"') == 2, 60, "booted workers")
        assert len(_pipes_above_1023(daemon.pid)) >= 3  # the signal pipe and two liveness pipes
        job_id = minion.enqueue("add", [2, 3])
        info = minion.result(job_id, timeout=30, interval=0.05)
        assert info is not None
        assert info["state"] == "finished"
        daemon.send_signal(signal.SIGTERM)  # heard through the signal pipe
        assert daemon.wait(60) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(30)
    assert "Traceback" not in log.read_text()
