"""POSIX process primitives shared by the worker and job processes; no policy.

Every fork goes through :func:`fork`, so every child starts the same way (default signal
handlers, no inherited wakeup fd or systemd socket, a fresh random seed) and leaves the same
way (``os._exit``: no atexit hooks, no finalizers touching what the parent still uses; so its
output and its spans, :func:`minion_daemon.tracing.flush`, are flushed first).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Final

import setproctitle

from minion_daemon import tracing
from minion_daemon.model import ExitReason

#: Exit code of a child whose body raised instead of returning one.
EXIT_CRASHED: Final = 1
#: What the status of a child that someone else reaped is taken as: unknown, so not success.
EXIT_UNKNOWN: Final = 255


def decode(status: int) -> ExitReason:
    """Turn a ``waitpid`` status into an :class:`ExitReason`."""
    if os.WIFSIGNALED(status):
        return ExitReason(0, os.WTERMSIG(status))
    return ExitReason(os.waitstatus_to_exitcode(status), 0)


def reap(pid: int, *, block: bool = False) -> ExitReason | None:
    """Collect child ``pid``; ``None`` while it runs (never when ``block``)."""
    try:
        reaped, status = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        return ExitReason(EXIT_UNKNOWN, 0)
    return decode(status) if reaped else None


def kill(pid: int, signum: int) -> bool:
    """Send ``signum`` to ``pid``; false when the process is already gone."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def kill_group(leader: int, signum: int) -> bool:
    """Send ``signum`` to the process group that ``leader`` leads (a job process and every
    process it started); false when the group is gone."""
    try:
        os.killpg(leader, signum)
    except ProcessLookupError:
        return False
    return True


def drain(fd: int) -> None:
    """Read everything waiting in a non-blocking pipe (a signal or liveness pipe)."""
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass


# SIGALRM: the worker's pulse, whose handler a job process must not run (a task's own alarm).
_DEFAULTED: Final = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGCHLD,
    signal.SIGHUP,
    signal.SIGALRM,
)
_USER: Final = (signal.SIGUSR1, signal.SIGUSR2)
#: The signals whose dispositions a fresh child sets for itself.
_RESET_SIGNALS: Final = frozenset(_DEFAULTED + _USER)


def reset_signals(*, ignore_user_signals: bool) -> None:
    """The signal state of a fresh child: defaults, and USR1/USR2 ignored for job processes."""
    for signum in _DEFAULTED:
        signal.signal(signum, signal.SIG_DFL)
    user = signal.SIG_IGN if ignore_user_signals else signal.SIG_DFL
    for signum in _USER:
        signal.signal(signum, user)
    signal.set_wakeup_fd(-1)


#: prctl(2) option: the signal this process gets when its parent dies (Linux).
_PR_SET_PDEATHSIG: Final = 1
#: The C library, loaded once here rather than in every child, where it cost a job process
#: a dlopen and ctypes' setup on each fork.
_libc: Final = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent: int, signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies (kill -9, OOM).

    An orphaned job would run on while repair retries its job elsewhere: the same job twice at
    once. Where prctl is missing (not Linux), the orphan finishes and its stale result is
    fenced off by ``retries`` instead.
    """
    if _libc is None:
        return
    _libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(EXIT_CRASHED)


def fork(
    body: Callable[[], int],
    *,
    job: bool,
    parent_death: int | None = None,
    ignored: tuple[int, ...] = (),
) -> int:
    """Fork; return the child's pid in the parent. The child runs ``body`` and exits with its
    return value (:data:`EXIT_CRASHED` if it raised, after printing the traceback).

    Job processes get their own process group, so a signal meant for the worker's terminal
    group (Ctrl-C) leaves them to the worker, and a kill can reach their descendants. The
    child gets ``parent_death`` when its parent dies (default: KILL for a job, TERM for
    others), and ignores the signals ``ignored`` from its first instruction on.
    """
    parent = os.getpid()
    # Held back across the fork until the child has its own dispositions: a signal sent to a
    # child that has just started would otherwise meet the parent's handlers, copied with it,
    # and be lost there (or the parent's SIG_IGN), or a USR1 would kill a job by the default
    # action before the job ignores it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _RESET_SIGNALS)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if job:
            # The child does the same; whichever runs first makes the group, so a kill of the
            # group sent the moment fork returns cannot miss it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpgid(pid, pid)
        return pid
    code = EXIT_CRASHED
    try:
        reset_signals(ignore_user_signals=job)
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.environ.pop("NOTIFY_SOCKET", None)
        random.seed()
        if job:
            os.setpgrp()
        # A job dies at once with its worker; a worker stops gracefully without its supervisor.
        if parent_death is None:
            parent_death = signal.SIGKILL if job else signal.SIGTERM
        _die_with_parent(parent, parent_death)
        code = body()
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
        traceback.print_exc()
    finally:
        try:
            tracing.flush()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(code)


def set_title(title: str, short: str) -> None:
    """Name this process: ``minion-daemon: {title}`` in ps's command line, and ``short``
    (at most 15 bytes) as its ``comm``, which top shows by default and pgrep matches.

    Without the second, setproctitle's own ``comm`` would be its title cut to
    ``minion-daemon: ``, the same for every process of the daemon.
    """
    setproctitle.setproctitle(f"minion-daemon: {title}")
    setproctitle.setthreadtitle(short)
