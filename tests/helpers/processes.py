"""Processes of a running daemon, found through /proc, and signals that cannot miss.

With thousands of short-lived job processes the kernel reuses process ids quickly (pid_max is
often 32768), so a pid read a moment ago may already name a stranger. :func:`signal_child`
opens a pidfd first, then checks the parent: the signal reaches that very process or none.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (of any of its threads); empty once it is gone."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def parent(pid: int) -> int | None:
    """The parent of ``pid``; ``None`` when it is gone or a zombie (dead, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may hold spaces: the fields follow the last ")".
    state, ppid = stat.rpartition(")")[2].split()[:2]
    return None if state == "Z" else int(ppid)


def signal_child(pid: int, of: int, signum: int) -> bool:
    """Send ``signum`` to ``pid`` if it is (still) a live child of ``of``; true when sent."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if parent(pid) != of:
            return False
        signal.pidfd_send_signal(handle, signum)
    except ProcessLookupError:
        return False
    finally:
        os.close(handle)
    return True


def gone(pid: int) -> bool:
    """Whether no process ``pid`` exists any more (a zombie still counts as there)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
