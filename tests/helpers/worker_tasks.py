"""Tasks the worker tests run, importable by the worker subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any


def add(job: Any, first: int, second: int) -> dict[str, int]:
    return {"added": first + second}


def sleep(job: Any, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def record_pid(job: Any) -> int:
    return os.getpid()


def stubborn(job: Any, seconds: float) -> None:
    """Ignores TERM, so only KILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def on_signals(job: Any, seconds: float) -> None:
    """Records USR1 and USR2 in its notes, the custom handlers of checklist 112."""
    received: list[str] = []

    def note(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        job.note(signals=received)

    signal.signal(signal.SIGUSR1, note)
    signal.signal(signal.SIGUSR2, note)
    time.sleep(seconds)


def noop(job: Any) -> None:
    """Returns nothing: its job finishes with a null result."""


TASKS = {
    "noop": noop,
    "add": add,
    "sleep": sleep,
    "record_pid": record_pid,
    "stubborn": stubborn,
    "on_signals": on_signals,
    "foo": add,
    "bar": add,
    "baz": add,
}


def logged_sleep(job: Any, path: str, seconds: float) -> float:
    """Appends its pid to ``path`` before sleeping, so a test can count how often it ran."""
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return seconds


TASKS["logged_sleep"] = logged_sleep


def with_child(job: Any, seconds: float) -> float:
    """Starts a child process (``sleep 1000``) and notes its pid, then sleeps: whatever ends
    the job must end the child too."""
    child = subprocess.Popen(["sleep", "1000"])
    job.note(child=child.pid)
    time.sleep(seconds)
    return seconds
