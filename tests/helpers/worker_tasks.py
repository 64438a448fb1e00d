"""Tasks the worker tests run, importable by the worker subprocess."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def add(job: Any, first: int, second: int) -> dict[str, int]:
    return {"added": first + second}


def sleep(job: Any, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def spanned(job: Any, seconds: float) -> None:
    """Sleeps, then notes when it began and ended (epoch seconds): how many jobs ran at once
    and how often they started is read from the jobs' notes."""
    began = time.time()
    time.sleep(seconds)
    job.note(span=[began, time.time()])


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


def _deep(levels: int) -> list[Any]:
    nested: list[Any] = []
    for _ in range(levels):
        nested = [nested]
    return nested


def _self_referring() -> dict[str, Any]:
    value: dict[str, Any] = {"name": "loop"}
    value["self"] = value
    return value


#: Results a job cannot store, by name: how to build one, and what its failure must name.
UNSTORABLE: dict[str, tuple[Callable[[], Any], tuple[str, ...]]] = {
    "set": (lambda: {"x": {1, 2}}, ("result['x']", "set")),
    "bytes": (lambda: {"x": b"raw"}, ("result['x']", "bytes")),
    "datetime": (lambda: [datetime.datetime.now(datetime.UTC)], ("result[0]", "datetime")),
    "nan": (lambda: {"x": float("nan")}, ("result['x']", "nan")),
    "inf": (lambda: [1, float("inf")], ("result[1]", "inf")),
    "huge int": (lambda: {"x": 10**5000}, ("result['x']", "digits")),
    "nul": (lambda: {"x": "a\x00b"}, ("result['x']", "NUL")),
    "lone surrogate": (lambda: ["\udc80"], ("result[0]", "surrogate")),
    "deep nesting": (lambda: _deep(1000), ("result", "nested deeper")),
    "self-reference": (_self_referring, ("result['self']", "refers back to result")),
    "object": (lambda: {"x": object()}, ("result['x']", "object")),
}


def unstorable(job: Any, kind: str) -> Any:
    """Returns a result of the kind named, which cannot be stored as JSON."""
    return UNSTORABLE[kind][0]()


def chatter(job: Any, marker: str, descriptors: bool = True) -> str:
    """Writes ``marker`` through Python's streams and, with ``descriptors``, through file
    descriptor 1 and a subprocess (inline, the descriptors are the worker's own)."""
    print(f"print {marker}")
    sys.stderr.write(f"stderr {marker}\n")
    if descriptors:
        os.write(1, f"fd {marker}\n".encode())
        subprocess.run(["echo", f"echo {marker}"], check=True)
    return marker


def crash(job: Any) -> None:
    """Ends its job process with a raw traceback: KeyboardInterrupt is no task failure."""
    raise KeyboardInterrupt("crashing the job process")


TASKS.update(
    unstorable=unstorable,
    unstorable_inline=unstorable,
    chatter=chatter,
    chatter_inline=chatter,
    crash=crash,
)


def flood(job: Any, megabytes: int) -> int:
    """Writes ``megabytes`` of output lines to descriptor 1, far more than a pipe holds."""
    line = b"x" * 1023 + b"\n"
    for _ in range(megabytes * 1024):
        os.write(1, line)
    return megabytes


TASKS["flood"] = flood


def unstorable_error(job: Any) -> None:
    """Fails with a message PostgreSQL cannot store as it is."""
    raise ValueError("a NUL \x00 and a lone \udc80 surrogate")


TASKS.update(unstorable_error=unstorable_error, unstorable_error_inline=unstorable_error)
