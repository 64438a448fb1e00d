"""Remote-control commands of Minion's inbox, parsed into values; pure.

The shapes are Perl Minion's, because its admin UI and CLI broadcast to every worker, Python
ones included: ``["jobs", N]``, ``["spare", N]``, ``["kill", SIGNAL, job_id]``,
``["stop", job_id]``. Anything malformed parses to ``None`` and is ignored, as in Perl.
Beyond Perl, ``["shutdown"]`` stops a Python worker as TERM does (Perl's ignores it).
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Any, Final

#: The signals a ``kill`` command may send, as Perl's worker accepts them.
KILL_SIGNALS: Final = frozenset(("INT", "TERM", "KILL", "USR1", "USR2"))

_DIGITS: Final = re.compile(r"[0-9]+")


def whole_number(value: Any) -> int | None:
    """``value`` as a count when it is all digits (Perl's ``/^\\d+$/``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class KillJob:
    """Send ``signum`` to the process of job ``job_id``, if this worker runs it."""

    signum: int
    job_id: int


def parse_kill(args: list[Any]) -> KillJob | None:
    """``["kill", SIGNAL, job_id]`` without the command name."""
    if len(args) < 2 or not isinstance(args[0], str) or args[0] not in KILL_SIGNALS:
        return None
    job_id = whole_number(args[1])
    if job_id is None:
        return None
    return KillJob(signal.Signals[f"SIG{args[0]}"].value, job_id)


def parse_stop(args: list[Any]) -> KillJob | None:
    """``["stop", job_id]``: a ``kill KILL`` for that job."""
    return parse_kill(["KILL", *args[:1]])
