"""The checked statements both clients run: each operation's arguments checked
(:mod:`minion_daemon.options`) and turned into one named statement of :mod:`.sql` and its
parameters, with no I/O.

:class:`~minion_daemon.backend.pg.PgBackend` runs them on psycopg's blocking connections and
:class:`~minion_daemon.backend.aio.AsyncPgBackend` on its async ones: one set of checks, one
error message for each mistake, and one SQL text per operation, whichever client a program
uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, LiteralString

from psycopg.types.json import Jsonb

from minion_daemon.backend import sql
from minion_daemon.backend.params import enqueue_params, job_fields, retry_params
from minion_daemon.backend.unique import ENQUEUE_UNIQUE, ENQUEUE_UNIQUE_MANY
from minion_daemon.model import Backoff
from minion_daemon.options import (
    INT_MAX,
    MAX_SECONDS,
    Options,
    check_args,
    check_id,
    check_ids,
    check_int,
    check_json,
    check_keys,
    check_notes,
    check_page,
    check_text,
    parse_enqueue,
    parse_filter,
    parse_retry,
)

JOB_FILTERS: Final = frozenset(("before", "ids", "notes", "queues", "states", "tasks"))


@dataclass(frozen=True, slots=True)
class Statement:
    """One operation's statement and parameters; ``unique``: it enqueues with keys, which
    needs minion-daemon's own tables (``unique.UNIQUE_JOBS_VERSION``)."""

    query: LiteralString
    params: dict[str, Any]
    unique: bool = False


def enqueue(task: str, args: Sequence[Any] | None, options: Options) -> Statement:
    """``ENQUEUE`` (``ENQUEUE_UNIQUE`` for a job with a key), returning the job's id."""
    opts = parse_enqueue("enqueue", task, args, options)
    params = enqueue_params(task, check_args("enqueue: args", args), opts)
    if opts.unique is not None:
        return Statement(ENQUEUE_UNIQUE, params, unique=True)
    return Statement(sql.ENQUEUE, params)


def enqueue_many(jobs: Sequence[tuple[str, Sequence[Any] | None, Options]]) -> Statement | None:
    """``ENQUEUE_MANY`` (or its unique form) for ``(task, args, options)`` items, returning
    the ids in the order given; ``None`` for no jobs."""
    if not isinstance(jobs, Sequence) or isinstance(jobs, str | bytes):
        expected = "a list of (task, args, options)"
        raise TypeError(f"enqueue_many: jobs must be {expected}, got {jobs!r:.60}")
    batch = []
    for index, job in enumerate(jobs):
        op = f"enqueue_many: jobs[{index}]"
        if not isinstance(job, tuple | list) or len(job) != 3:
            raise ValueError(f"{op} must be a (task, args, options) tuple, got {job!r:.60}")
        task, args, options = job
        opts = parse_enqueue(op, task, args, options)
        batch.append(job_fields(task, check_args(op, args), opts))
    if not batch:
        return None
    if any("unique" in job for job in batch):
        return Statement(ENQUEUE_UNIQUE_MANY, {"jobs": Jsonb(batch)}, unique=True)
    return Statement(sql.ENQUEUE_MANY, {"jobs": Jsonb(batch)})


def check_result(op: str, job_id: int, retries: int, value: Any) -> tuple[int, int]:
    """The checked id and retries of a job's result (``value``, checked as JSON)."""
    checked = check_id(f"{op}: id", job_id), check_int(f"{op}: retries", retries, 0, INT_MAX)
    check_json(f"{op}: result", value)
    return checked


def result(op: str, state: str, job_id: int, retries: int, value: Any) -> Statement:
    """``UPDATE_RESULT``, fenced by (id, retries), returning the job's ``attempts``."""
    checked_id, checked_retries = check_result(op, job_id, retries, value)
    params = {"id": checked_id, "retries": checked_retries, "state": state, "result": Jsonb(value)}
    return Statement(sql.UPDATE_RESULT, params)


def backoff_delay(retries: int, backoff: Backoff) -> float:
    """``backoff(retries)`` within what an interval can hold.

    Jobs that retry themselves to run periodically reach hundreds of retries, where
    ``retries ** 4`` passes 68 years; such a delay means "not in this lifetime" either way,
    and failing the job must never break on it.
    """
    delay = backoff(retries)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or math.isnan(delay):
        raise TypeError(f"backoff({retries}) must return a number of seconds, got {delay!r}")
    return min(max(float(delay), 0.0), MAX_SECONDS)


def record_failure(
    job_id: int, retries: int, value: Any, backoff: Backoff, *, retry: bool
) -> tuple[Statement, Statement | None]:
    """A failure (``UPDATE_RESULT``) and, unless it is final whatever the attempts (``retry``
    false), Minion's automatic retry after ``backoff(retries)`` seconds
    (``RETRY_AFTER_FAILURE``: only while attempts remain), to run in one transaction: sent in
    one pipeline with one Sync, which PostgreSQL makes one implicit transaction, one round
    trip (the retry finds the failure by its finished = NOW(), that transaction's time)."""
    failure = result("fail_job", "failed", job_id, retries, value)
    if not retry:
        return failure, None
    delay = backoff_delay(retries, backoff)
    return failure, Statement(
        sql.RETRY_AFTER_FAILURE, {"id": job_id, "retries": retries, "delay": delay}
    )


def failure_outcome(failed: int, retried: int | None) -> Literal["failed", "retried"] | None:
    """What :func:`record_failure`'s statements did, from their row counts: ``None`` when the
    job was not active with those retries."""
    if failed < 1:
        return None
    return "retried" if retried else "failed"


def retry_job(job_id: int, retries: int, options: Options) -> Statement:
    opts = parse_retry("retry_job", options)
    job = check_id("retry_job: id", job_id)
    count = check_int("retry_job: retries", retries, 0, INT_MAX)
    return Statement(sql.RETRY_JOB, retry_params(job, count, opts))


def remove_job(job_id: int) -> Statement:
    return Statement(sql.REMOVE_JOB, {"id": check_id("remove_job: id", job_id)})


def note(job_id: int, merge: Mapping[str, Any]) -> Statement:
    params = {
        "id": check_id("note: id", job_id),
        "merge": Jsonb(check_notes("note: merge", merge)),
    }
    return Statement(sql.NOTE, params)


def page_params(
    op: str, offset: int, limit: int, options: Options, allowed: frozenset[str]
) -> dict[str, Any]:
    """A listing's filters and its page."""
    start, size = check_page(op, offset, limit)
    return parse_filter(op, options, allowed) | {"offset": start, "limit": size}


def job_info(job_id: int) -> Statement:
    """``LIST_JOBS`` for the one job ``job_id`` (its row as ``list_jobs`` shows it)."""
    params = page_params("job", 0, 1, {"ids": [check_id("job: id", job_id)]}, JOB_FILTERS)
    return Statement(sql.LIST_JOBS, params)


def broadcast(command: str, args: Sequence[Any] | None, ids: Sequence[int] | None) -> Statement:
    check_text("broadcast: command", command)
    message = [[command, *check_args("broadcast: args", args)]]
    targets = [] if ids is None else check_ids("broadcast: ids", ids)
    return Statement(sql.BROADCAST, {"message": Jsonb(message), "ids": targets})


def lock(name: str, duration: int, options: Options) -> Statement:
    opts = check_keys("lock", options, frozenset(("limit",)))
    limit = opts.get("limit")
    params = {
        "name": check_text("lock: name", name, empty=True),
        "duration": check_int("lock: duration", duration, -INT_MAX, INT_MAX),
        "limit": 1 if limit is None else check_int("lock: option 'limit'", limit, 1, INT_MAX),
    }
    return Statement(sql.LOCK, params)


def unlock(name: str) -> Statement:
    return Statement(sql.UNLOCK, {"name": check_text("unlock: name", name, empty=True)})
