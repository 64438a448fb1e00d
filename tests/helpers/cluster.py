"""Private clusters (``minion_daemon.embedded_pg``) for tests: state directories and the
processes of a cluster, found through ``/proc``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from helpers.waiting import wait_until

AS_ROOT = os.geteuid() == 0
# Only a directory to make private ones in (mkdtemp), so the shared-directory warning is moot.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else "/tmp"  # noqa: S108


@contextlib.contextmanager
def private_state_dir(template: Path | None = None) -> Iterator[Path]:
    """A state directory the cluster's OS user owns (a copy of ``template``, if given).

    Not under tmp_path: that lies below a root-only directory (as root the cluster runs as
    ``postgres``, which must get through) and is long enough to near the socket path limit.
    On a tmpfs when there is one, where initdb's and the checkpoints' fsyncs cost nothing.
    """
    base = Path(tempfile.mkdtemp(prefix="mdpg-", dir=SCRATCH))
    base.chmod(0o755)
    state = base / "state"
    try:
        if template:
            subprocess.run(["cp", "-a", str(template), str(state)], check=True)
        else:
            state.mkdir(mode=0o700)
            if AS_ROOT:
                shutil.chown(state, user="postgres")
        yield state
    finally:
        kill(cluster_processes(state / "pgdata"))  # what a failed test may have left running
        shutil.rmtree(base, ignore_errors=True)


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"  # an unreaped zombie has ended


def cluster_processes(pgdata: Path) -> set[int]:
    """The running postmaster of ``pgdata`` and its children."""
    pid = postmaster_pid(pgdata)
    if pid is None or not alive(pid):
        return set()
    return {pid, *children(pid)}


def children(parent: int) -> set[int]:
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return {pid for pid in pids if (fields := proc_stat(pid)) and fields[1] == str(parent)}


def kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # Reaped, not merely zombies: pg_ctl status takes a zombie postmaster for a running one.
    wait_until(lambda: all(proc_stat(pid) is None for pid in pids), 10, "the killed to go")
