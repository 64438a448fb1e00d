"""Fork mode forks each job's process ahead of its job: a spare waits on a pipe in each fork
server, so that a job starts without waiting for its fork (issue 14's start latency)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from helpers.processes import children
from helpers.waiting import wait_until

from minion_daemon import Minion

WAITING = "minion-daemon: job process, waiting for its job"


def _title(pid: int) -> str | None:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode()
    return None


def _spare(daemon_pid: int) -> int | None:
    """The one waiting job process of the daemon's one worker, once there is exactly one."""
    servers = [server for worker in children(daemon_pid) for server in children(worker)]
    waiting = [pid for server in servers for pid in children(server) if _title(pid) == WAITING]
    return waiting[0] if len(waiting) == 1 else None


def _pid_and_state(minion: Minion, job_id: int) -> tuple[int | None, str]:
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    return info["notes"].get("minion_pid"), info["state"]


def test_a_job_runs_in_the_process_forked_before_it_came(start: Any, minion: Minion) -> None:
    daemon, _ = start(workers={"processes": 1}, metrics={"enabled": False})
    spare = wait_until(lambda: _spare(daemon.pid), 30, "a spare job process")
    job_id = minion.enqueue("add", [2, 3])
    wait_until(lambda: _pid_and_state(minion, job_id)[1] == "finished", 30, "the job")
    assert _pid_and_state(minion, job_id)[0] == spare
    # The next spare is forked once the server is idle again.
    assert wait_until(lambda: _spare(daemon.pid), 30, "the next spare") != spare


def test_a_killed_spare_is_replaced_and_no_job_is_lost(start: Any, minion: Minion) -> None:
    daemon, _ = start(workers={"processes": 1}, metrics={"enabled": False})
    spare = wait_until(lambda: _spare(daemon.pid), 30, "a spare job process")
    os.kill(spare, signal.SIGKILL)
    replacement = wait_until(
        lambda: (pid := _spare(daemon.pid)) != spare and pid, 30, "a new spare"
    )
    job_id = minion.enqueue("add", [4, 5])
    wait_until(lambda: _pid_and_state(minion, job_id)[1] == "finished", 30, "the job")
    assert _pid_and_state(minion, job_id)[0] == replacement
    assert minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["result"] == {"added": 9}
