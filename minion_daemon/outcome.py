"""What a worker records for a job that ended: one pure function of how it ended (SPEC §3.3).

Every runner reports an :class:`Ending`; :func:`verdict` turns it into the one change to make,
so the rules live here once for every mode:

1. What the task produced and handed over (its return value, or its error) is recorded: the
   task completed before whatever ended its process, and that stands. An error its task's
   retry policy made final fails the job without retry.
2. A job that was recorded already (the task finished, failed or retried it itself, or its
   job process recorded a result too large to hand over) is left alone.
3. A job that ran past its task's timeout fails with ``Job timed out after N seconds``.
4. A job process that exited non-zero or died by a signal fails the job with ``Job
   terminated unexpectedly (exit code: N, signal: M)``.
5. Anything else finished cleanly without a result: the job finishes with ``null``, as Perl's
   worker does after every clean exit.

Every change is then fenced by ``retries``, so a stale verdict changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from minion_daemon.model import ExitReason


@dataclass(frozen=True, slots=True)
class Handed:
    """What the task produced: ``("result", value)`` or ``("error", text)``."""

    kind: Literal["result", "error"]
    value: Any
    #: An error that must not retry (the task's retry policy said so of its exception).
    final: bool = False


@dataclass(frozen=True, slots=True)
class Ending:
    """How one job ended, as its runner saw it."""

    #: What the task produced, for the worker to record; ``None`` when nothing was handed over.
    handed: Handed | None = None
    #: The job was recorded already, by the task or its job process.
    recorded: bool = False
    #: The seconds of the timeout it ran past, when its runner stopped it for that.
    timed_out_after: float | None = None
    #: How its process ended; ``None`` for a job that ran in the worker's own process.
    exit: ExitReason | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The one change to record: ``finish`` or ``fail`` with ``value``, or ``nothing``; a
    ``fail`` retries while attempts remain unless ``retry`` is false."""

    action: Literal["finish", "fail", "nothing"]
    value: Any = None
    retry: bool = True


NOTHING = Verdict("nothing")


def verdict(ending: Ending) -> Verdict:
    """The change that records ``ending`` (the rules in this module's docstring)."""
    if ending.handed is not None:
        action: Literal["finish", "fail"] = "finish" if ending.handed.kind == "result" else "fail"
        return Verdict(action, ending.handed.value, retry=not ending.handed.final)
    if ending.recorded:
        return NOTHING
    if ending.timed_out_after is not None:
        return Verdict("fail", f"Job timed out after {ending.timed_out_after:g} seconds")
    if ending.exit is not None and not ending.exit.clean:
        return Verdict("fail", f"Job terminated unexpectedly ({ending.exit})")
    return Verdict("finish", None)
