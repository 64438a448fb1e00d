"""Bad arguments are refused before the database; awkward strings round-trip exactly.

The acceptance point of the input-checking issue, against a real PostgreSQL:

* every public ``PgBackend`` operation checks its arguments first and raises ``TypeError`` (wrong
  type) or ``ValueError`` (wrong value, unknown option) whose message names the option, and no row
  or sequence changes;
* "first" is shown directly too: a backend whose DSN points at a closed port raises the same
  errors instead of ``DatabaseUnavailableError``;
* strings full of quotes, comment markers, backslashes, placeholders, control characters and
  emoji are stored and read back byte for byte, and a recording of every statement sent shows
  them only among the parameters, never in the SQL text;
* a NUL character, which PostgreSQL cannot store in TEXT or JSONB, gets a ``ValueError`` saying
  so instead of a driver error; so does a lone surrogate, which UTF-8 cannot encode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from minion_daemon.backend import PgBackend
from minion_daemon.errors import CronError, DatabaseUnavailableError

Call = Callable[[PgBackend], object]

NAN, INF = math.nan, math.inf
INT_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
NUL = "before\x00after"

#: A closed port: any attempt to reach the database fails at once with "connection refused".
UNREACHABLE = "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=1"

#: Seeded by the ``seeded`` fixture, so that a check that is missing would change real rows.
INACTIVE_JOB, ACTIVE_JOB, WORKER = 1, 2, 1


Expected = type[Exception] | tuple[type[Exception], ...]


def _case(label: str, error: Expected, match: str, call: Call) -> Any:
    return pytest.param(call, error, match, id=label)


def _nested(depth: int) -> list[Any]:
    """``[[[...]]]``, ``depth`` lists deep: deeper than Python's recursion limit allows to walk."""
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


# Per-job options shared by enqueue, enqueue_many, retry_job and schedule: (key, value, error).
BAD_JOB_OPTIONS: list[tuple[str, object, type[Exception]]] = [
    ("attempts", "3", TypeError),
    ("attempts", 2.0, TypeError),
    ("attempts", True, TypeError),
    ("attempts", 0, ValueError),
    ("attempts", -1, ValueError),
    ("attempts", INT_MAX + 1, ValueError),
    ("priority", "high", TypeError),
    ("priority", 1.0, TypeError),
    ("priority", False, TypeError),
    ("priority", INT_MAX + 1, ValueError),
    ("priority", -INT_MAX - 2, ValueError),
    ("delay", "10", TypeError),
    ("delay", True, TypeError),
    ("delay", [1], TypeError),
    ("delay", -1, ValueError),
    ("delay", -0.5, ValueError),
    ("delay", NAN, ValueError),
    ("delay", INF, ValueError),
    ("delay", 10**400, ValueError),
    ("expire", "60", TypeError),
    ("expire", 1.5, TypeError),
    ("expire", 0, ValueError),
    ("expire", -5, ValueError),
    ("expire", INT_MAX + 1, ValueError),
    ("lax", "yes", TypeError),
    ("lax", 2, TypeError),
    ("lax", 1.0, TypeError),
    ("notes", [], TypeError),
    ("notes", "key=value", TypeError),
    ("notes", {1: "x"}, TypeError),
    ("notes", {"k": NAN}, ValueError),
    ("notes", {"k": [INF]}, ValueError),
    ("notes", {"k": {1, 2}}, TypeError),
    ("notes", {"k": b"bytes"}, TypeError),
    ("notes", {"k": object()}, TypeError),
    ("parents", "12", TypeError),
    ("parents", 1, TypeError),
    ("parents", [1.5], TypeError),
    ("parents", ["x"], TypeError),
    ("parents", [None], TypeError),
    ("parents", [BIGINT_MAX + 1], ValueError),
    ("queue", 5, TypeError),
    ("queue", "", ValueError),
    ("queue", ["default"], TypeError),
]

RETRY_KEYS = {"attempts", "delay", "expire", "lax", "parents", "priority", "queue"}
SCHEDULE_KEYS = {"attempts", "expire", "lax", "notes", "priority", "queue"}


def _label(key: str, value: object) -> str:
    return f"{key}={value!r:.24}"


def _enqueue(options: dict[str, Any]) -> Call:
    return lambda b: b.enqueue("task", ["ok"], options)


def _enqueue_many(options: dict[str, Any]) -> Call:
    return lambda b: b.enqueue_many([("good", [1], None), ("task", ["ok"], options)])


def _retry(options: dict[str, Any]) -> Call:
    return lambda b: b.retry_job(ACTIVE_JOB, 0, options)


def _schedule(options: dict[str, Any]) -> Call:
    return lambda b: b.schedule("new", "@daily", "task", ["ok"], options)


def _job_option_cases() -> list[Any]:
    cases = []
    for key, value, error in BAD_JOB_OPTIONS:
        options, label, named = {key: value}, _label(key, value), rf"\b{key}\b"
        cases.append(_case(f"enqueue-{label}", error, named, _enqueue(options)))
        cases.append(
            _case(f"enqueue_many-{label}", error, rf"jobs\[1\].*{named}", _enqueue_many(options))
        )
        if key in RETRY_KEYS:
            cases.append(_case(f"retry_job-{label}", error, named, _retry(options)))
        if key in SCHEDULE_KEYS:
            cases.append(_case(f"schedule-{label}", error, named, _schedule(options)))
    return cases


def _unknown_and_shapeless_option_cases() -> list[Any]:
    """Unknown keys (a typo must not be ignored) and options that are not a mapping at all."""
    unknown: dict[str, tuple[str, Call]] = {
        "enqueue": ("prio", lambda b: b.enqueue("task", [], {"prio": 1})),
        "enqueue-case": ("Attempts", lambda b: b.enqueue("task", [], {"Attempts": 2})),
        "enqueue_many": ("delayed", lambda b: b.enqueue_many([("task", [], {"delayed": 1})])),
        "retry_job": ("notes", lambda b: b.retry_job(ACTIVE_JOB, 0, {"notes": {}})),
        "retry_job-typo": ("prority", lambda b: b.retry_job(ACTIVE_JOB, 0, {"prority": 1})),
        "schedule-delay": ("delay", lambda b: b.schedule("n", "@daily", "t", [], {"delay": 5})),
        "schedule-parents": (
            "parents", lambda b: b.schedule("n", "@daily", "t", [], {"parents": [1]}),
        ),
        "dequeue": ("queue", lambda b: b.dequeue(WORKER, 0, {"queue": ["default"]})),
        "list_jobs": ("state", lambda b: b.list_jobs(0, 10, {"state": ["active"]})),
        "list_jobs-names": ("names", lambda b: b.list_jobs(0, 10, {"names": ["x"]})),
        "list_workers": ("names", lambda b: b.list_workers(0, 10, {"names": ["x"]})),
        "list_locks": ("ids", lambda b: b.list_locks(0, 10, {"ids": [1]})),
        "list_schedules": ("states", lambda b: b.list_schedules(0, 10, {"states": ["x"]})),
        "lock": ("limt", lambda b: b.lock("name", 60, {"limt": 2})),
        "register_worker": ("stauts", lambda b: b.register_worker(WORKER, {"stauts": {}})),
        "reset": ("everything", lambda b: b.reset({"everything": True})),
    }  # fmt: skip
    shapeless: dict[str, Call] = {
        "enqueue": lambda b: b.enqueue("task", [], [("attempts", 2)]),
        "retry_job": lambda b: b.retry_job(ACTIVE_JOB, 0, "attempts=2"),
        "dequeue": lambda b: b.dequeue(WORKER, 0, ["default"]),
        "list_jobs": lambda b: b.list_jobs(0, 10, ["active"]),
        "lock": lambda b: b.lock("name", 60, 2),
        "register_worker": lambda b: b.register_worker(WORKER, "idle"),
        "reset": lambda b: b.reset("all"),
        "schedule": lambda b: b.schedule("n", "@daily", "t", [], 5),
    }
    return [
        *(_case(f"{op}-unknown-{key}", ValueError, rf"\b{key}\b", call)
          for op, (key, call) in unknown.items()),
        *(_case(f"{op}-options-not-a-mapping", TypeError, "options", call)
          for op, call in shapeless.items()),
    ]  # fmt: skip


# Everything else, operation by operation: (label, error, what the message must name, call).
# fmt: off
OTHER_CASES = [
    # enqueue: the task and the args
    _case("enqueue-task-int", TypeError, "task", lambda b: b.enqueue(5)),
    _case("enqueue-task-none", TypeError, "task", lambda b: b.enqueue(None)),
    _case("enqueue-task-empty", ValueError, "task", lambda b: b.enqueue("")),
    _case("enqueue-args-str", TypeError, "args", lambda b: b.enqueue("t", "abc")),
    _case("enqueue-args-dict", TypeError, "args", lambda b: b.enqueue("t", {"a": 1})),
    _case("enqueue-args-set", TypeError, "args", lambda b: b.enqueue("t", {1, 2})),
    _case("enqueue-args-generator", TypeError, "args",
          lambda b: b.enqueue("t", (n for n in range(3)))),
    _case("enqueue-args-int", TypeError, "args", lambda b: b.enqueue("t", 7)),
    _case("enqueue-args-nan", ValueError, "args", lambda b: b.enqueue("t", [1, NAN])),
    _case("enqueue-args-inf", ValueError, "args", lambda b: b.enqueue("t", [{"x": -INF}])),
    _case("enqueue-args-bytes", TypeError, "args", lambda b: b.enqueue("t", [b"raw"])),
    _case("enqueue-args-set-inside", TypeError, "args", lambda b: b.enqueue("t", [[{1}]])),
    _case("enqueue-args-int-key", TypeError, "args", lambda b: b.enqueue("t", [{1: "one"}])),
    _case("enqueue-args-tuple-key", TypeError, "args", lambda b: b.enqueue("t", [{(1,): 1}])),
    _case("enqueue-args-none-key", TypeError, "args", lambda b: b.enqueue("t", [{None: 1}])),
    _case("enqueue-args-object", TypeError, "args", lambda b: b.enqueue("t", [object()])),
    _case("enqueue-args-complex", TypeError, "args", lambda b: b.enqueue("t", [1j])),
    _case("enqueue-args-too-deep", (TypeError, ValueError), "args",
          lambda b: b.enqueue("t", _nested(5000))),
    # enqueue_many: the batch is checked as a whole, first to last
    _case("enqueue_many-task", ValueError, r"jobs\[1\].*task",
          lambda b: b.enqueue_many([("ok", [], None), ("", [], None)])),
    _case("enqueue_many-args", TypeError, r"jobs\[2\].*args",
          lambda b: b.enqueue_many([("ok", [], None), ("ok", [], None), ("t", "x", None)])),
    _case("enqueue_many-item-too-short", ValueError, r"jobs\[0\]",
          lambda b: b.enqueue_many([("task", [])])),
    _case("enqueue_many-not-a-list", TypeError, "jobs",
          lambda b: b.enqueue_many(None)),
    # dequeue
    _case("dequeue-worker-str", TypeError, "worker_id", lambda b: b.dequeue("w1", 0)),
    _case("dequeue-worker-float", TypeError, "worker_id", lambda b: b.dequeue(1.0, 0)),
    _case("dequeue-worker-none", TypeError, "worker_id", lambda b: b.dequeue(None, 0)),
    _case("dequeue-wait-negative", ValueError, "wait", lambda b: b.dequeue(WORKER, -1)),
    _case("dequeue-wait-str", TypeError, "wait", lambda b: b.dequeue(WORKER, "5")),
    _case("dequeue-wait-nan", ValueError, "wait", lambda b: b.dequeue(WORKER, NAN)),
    _case("dequeue-wait-huge", ValueError, "wait", lambda b: b.dequeue(WORKER, 10**400)),
    _case("dequeue-queues-str", TypeError, "queues",
          lambda b: b.dequeue(WORKER, 0, {"queues": "default"})),
    _case("dequeue-queues-int-item", TypeError, "queues",
          lambda b: b.dequeue(WORKER, 0, {"queues": ["default", 1]})),
    _case("dequeue-tasks-str", TypeError, "tasks", lambda b: b.dequeue(WORKER, 0, {"tasks": "t"})),
    _case("dequeue-min_priority-str", TypeError, "min_priority",
          lambda b: b.dequeue(WORKER, 0, {"min_priority": "1"})),
    _case("dequeue-min_priority-range", ValueError, "min_priority",
          lambda b: b.dequeue(WORKER, 0, {"min_priority": INT_MAX + 1})),
    _case("dequeue-id-str", TypeError, r"\bid\b",
          lambda b: b.dequeue(WORKER, 0, {"id": "first"})),
    _case("dequeue-id-float", TypeError, r"\bid\b",
          lambda b: b.dequeue(WORKER, 0, {"id": 1.0})),
    # retry_job, finish_job, fail_job, remove_job, note: ids, retries and results
    _case("retry_job-id-str", TypeError, r"\bid\b", lambda b: b.retry_job("two", 0)),
    _case("retry_job-id-range", ValueError, r"\bid\b", lambda b: b.retry_job(2**63, 0)),
    _case("retry_job-retries-negative", ValueError, "retries",
          lambda b: b.retry_job(ACTIVE_JOB, -1)),
    _case("retry_job-retries-str", TypeError, "retries", lambda b: b.retry_job(ACTIVE_JOB, "0")),
    _case("retry_job-retries-range", ValueError, "retries",
          lambda b: b.retry_job(ACTIVE_JOB, INT_MAX + 1)),
    *(
        _case(f"{op}-{label}", error, match, call)
        for op in ("finish_job", "fail_job")
        for label, error, match, call in [
            ("id-str", TypeError, r"\bid\b", lambda b, op=op: getattr(b, op)("two", 0)),
            ("id-bool", TypeError, r"\bid\b", lambda b, op=op: getattr(b, op)(True, 0)),
            ("id-float", TypeError, r"\bid\b", lambda b, op=op: getattr(b, op)(2.0, 0)),
            ("retries-negative", ValueError, "retries",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, -1)),
            ("retries-bool", TypeError, "retries",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, False)),
            ("retries-float", TypeError, "retries",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0.0)),
            ("result-nan", ValueError, "result",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0, NAN)),
            ("result-inf-inside", ValueError, "result",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0, {"t": [INF]})),
            ("result-int-key", TypeError, "result",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0, {1: "x"})),
            ("result-set", TypeError, "result",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0, {"done"})),
            ("result-bytes", TypeError, "result",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0, b"done")),
            ("result-exception", TypeError, "result",
             lambda b, op=op: getattr(b, op)(ACTIVE_JOB, 0, RuntimeError("boom"))),
        ]
    ),
    _case("remove_job-id-str", TypeError, r"\bid\b", lambda b: b.remove_job("one")),
    _case("remove_job-id-float", TypeError, r"\bid\b", lambda b: b.remove_job(1.0)),
    _case("remove_job-id-double-minus", (TypeError, ValueError), r"\bid\b",
          lambda b: b.remove_job("--1")),
    _case("note-id-str", TypeError, r"\bid\b", lambda b: b.note("one", {"k": 1})),
    _case("note-merge-list", TypeError, "merge", lambda b: b.note(INACTIVE_JOB, [("k", 1)])),
    _case("note-merge-none", TypeError, "merge", lambda b: b.note(INACTIVE_JOB, None)),
    _case("note-merge-int-key", TypeError, "merge", lambda b: b.note(INACTIVE_JOB, {1: "x"})),
    _case("note-merge-nan", ValueError, "merge", lambda b: b.note(INACTIVE_JOB, {"k": NAN})),
    _case("note-merge-set", TypeError, "merge", lambda b: b.note(INACTIVE_JOB, {"k": {1}})),
    # listings: pages and filters
    *(
        _case(f"{op}-{label}", error, match, call)
        for op in ("list_jobs", "list_workers", "list_locks", "list_schedules")
        for label, error, match, call in [
            ("offset-negative", ValueError, "offset", lambda b, op=op: getattr(b, op)(-1, 10)),
            ("offset-float", TypeError, "offset", lambda b, op=op: getattr(b, op)(1.5, 10)),
            ("offset-str", TypeError, "offset", lambda b, op=op: getattr(b, op)("0", 10)),
            ("limit-negative", ValueError, "limit", lambda b, op=op: getattr(b, op)(0, -1)),
            ("limit-none", TypeError, "limit", lambda b, op=op: getattr(b, op)(0, None)),
            ("limit-range", ValueError, "limit",
             lambda b, op=op: getattr(b, op)(0, BIGINT_MAX + 1)),
        ]
    ),
    _case("list_jobs-states-unknown", ValueError, "states",
          lambda b: b.list_jobs(0, 10, {"states": ["inactive", "bogus"]})),
    _case("list_jobs-states-upper-case", ValueError, "states",
          lambda b: b.list_jobs(0, 10, {"states": ["ACTIVE"]})),
    _case("list_jobs-states-str", TypeError, "states",
          lambda b: b.list_jobs(0, 10, {"states": "active"})),
    _case("list_jobs-queues-str", TypeError, "queues",
          lambda b: b.list_jobs(0, 10, {"queues": "default"})),
    _case("list_jobs-tasks-int", TypeError, "tasks", lambda b: b.list_jobs(0, 10, {"tasks": [1]})),
    _case("list_jobs-notes-str", TypeError, "notes", lambda b: b.list_jobs(0, 10, {"notes": "k"})),
    _case("list_jobs-ids-str-item", TypeError, "ids",
          lambda b: b.list_jobs(0, 10, {"ids": [1, "x"]})),
    _case("list_jobs-ids-int", TypeError, "ids", lambda b: b.list_jobs(0, 10, {"ids": 1})),
    _case("list_jobs-ids-str", TypeError, "ids", lambda b: b.list_jobs(0, 10, {"ids": "12"})),
    _case("list_jobs-before-str", TypeError, "before",
          lambda b: b.list_jobs(0, 10, {"before": "x"})),
    _case("list_workers-before-float", TypeError, "before",
          lambda b: b.list_workers(0, 10, {"before": 1.5})),
    _case("list_workers-ids-str", TypeError, "ids",
          lambda b: b.list_workers(0, 10, {"ids": "12"})),
    _case("list_locks-names-str", TypeError, "names",
          lambda b: b.list_locks(0, 10, {"names": "held"})),
    _case("list_locks-names-int-item", TypeError, "names",
          lambda b: b.list_locks(0, 10, {"names": [5]})),
    _case("list_schedules-names-str", TypeError, "names",
          lambda b: b.list_schedules(0, 10, {"names": "nightly"})),
    _case("list_schedules-ids-str-item", TypeError, "ids",
          lambda b: b.list_schedules(0, 10, {"ids": ["a"]})),
    # locks
    _case("lock-name-int", TypeError, "name", lambda b: b.lock(5, 60)),
    _case("lock-name-none", TypeError, "name", lambda b: b.lock(None, 60)),
    _case("lock-duration-float", TypeError, "duration", lambda b: b.lock("held", 1.5)),
    _case("lock-duration-str", TypeError, "duration", lambda b: b.lock("held", "60")),
    _case("lock-duration-range", ValueError, "duration", lambda b: b.lock("held", INT_MAX + 1)),
    _case("lock-limit-zero", ValueError, "limit", lambda b: b.lock("held", 60, {"limit": 0})),
    _case("lock-limit-str", TypeError, "limit", lambda b: b.lock("held", 60, {"limit": "2"})),
    _case("lock-limit-bool", TypeError, "limit", lambda b: b.lock("held", 60, {"limit": True})),
    _case("unlock-name-int", TypeError, "name", lambda b: b.unlock(1)),
    _case("unlock-name-bytes", TypeError, "name", lambda b: b.unlock(b"held")),
    # workers and remote control
    _case("register_worker-id-str", TypeError, r"\bid\b", lambda b: b.register_worker("w")),
    _case("register_worker-id-float", TypeError, r"\bid\b", lambda b: b.register_worker(1.5)),
    _case("register_worker-status-str", TypeError, "status",
          lambda b: b.register_worker(WORKER, {"status": "busy"})),
    _case("register_worker-status-list", TypeError, "status",
          lambda b: b.register_worker(WORKER, {"status": []})),
    _case("register_worker-status-empty-str", TypeError, "status",
          lambda b: b.register_worker(WORKER, {"status": ""})),
    _case("register_worker-status-int-key", TypeError, "status",
          lambda b: b.register_worker(WORKER, {"status": {1: 2}})),
    _case("register_worker-status-nan", ValueError, "status",
          lambda b: b.register_worker(WORKER, {"status": {"load": NAN}})),
    _case("unregister_worker-id-str", TypeError, r"\bid\b", lambda b: b.unregister_worker("w")),
    _case("receive-id-str", TypeError, "worker_id", lambda b: b.receive("w")),
    _case("broadcast-command-int", TypeError, "command", lambda b: b.broadcast(5)),
    _case("broadcast-command-empty", ValueError, "command", lambda b: b.broadcast("")),
    _case("broadcast-args-str", TypeError, "args", lambda b: b.broadcast("jobs", "5")),
    _case("broadcast-args-nan", ValueError, "args", lambda b: b.broadcast("jobs", [NAN])),
    _case("broadcast-ids-str-item", TypeError, "ids",
          lambda b: b.broadcast("stop", [], ["one"])),
    _case("broadcast-ids-int", TypeError, "ids", lambda b: b.broadcast("stop", [], 1)),
    _case("broadcast-ids-str", TypeError, "ids", lambda b: b.broadcast("stop", [], "1")),
    # reset and repair
    _case("reset-all-str", TypeError, "all", lambda b: b.reset({"all": "yes"})),
    _case("reset-all-two", TypeError, "all", lambda b: b.reset({"all": 2})),
    _case("reset-locks-str", TypeError, "locks", lambda b: b.reset({"locks": "1"})),
    _case("repair-missing_after-negative", ValueError, "missing_after",
          lambda b: b.repair(missing_after=-1)),
    _case("repair-remove_after-str", TypeError, "remove_after",
          lambda b: b.repair(remove_after="2 days")),
    _case("repair-stuck_after-nan", ValueError, "stuck_after",
          lambda b: b.repair(stuck_after=NAN)),
    _case("repair-stuck_after-huge", ValueError, "stuck_after",
          lambda b: b.repair(stuck_after=10**400)),
    # schedules
    _case("schedule-name-empty", ValueError, "name", lambda b: b.schedule("", "@daily", "t")),
    _case("schedule-name-int", TypeError, "name", lambda b: b.schedule(7, "@daily", "t")),
    _case("schedule-cron-int", TypeError, "cron", lambda b: b.schedule("n", 5, "t")),
    _case("schedule-cron-empty", ValueError, "cron", lambda b: b.schedule("n", "", "t")),
    _case("schedule-cron-invalid", CronError, "Invalid cron",
          lambda b: b.schedule("n", "every day", "t")),
    _case("schedule-task-empty", ValueError, "task", lambda b: b.schedule("n", "@daily", "")),
    _case("schedule-task-none", TypeError, "task", lambda b: b.schedule("n", "@daily", None)),
    _case("schedule-args-str", TypeError, "args",
          lambda b: b.schedule("n", "@daily", "t", "x")),
    _case("schedule-args-nan", ValueError, "args",
          lambda b: b.schedule("n", "@daily", "t", [NAN])),
    *(
        _case(f"{op}-name-int", TypeError, "name", lambda b, op=op: getattr(b, op)(1))
        for op in ("unschedule", "pause_schedule", "resume_schedule")
    ),
]
# fmt: on

BAD_CASES = [*_job_option_cases(), *_unknown_and_shapeless_option_cases(), *OTHER_CASES]

# A NUL anywhere a string goes: (label, call). Each must raise ValueError mentioning NUL.
NUL_CASES = [
    pytest.param(call, id=label)
    for label, call in {
        "enqueue-task": lambda b: b.enqueue(NUL),
        "enqueue-queue": lambda b: b.enqueue("t", [], {"queue": NUL}),
        "enqueue-args": lambda b: b.enqueue("t", [NUL]),
        "enqueue-args-nested": lambda b: b.enqueue("t", [1, {"k": ["ok", NUL]}]),
        "enqueue-args-key": lambda b: b.enqueue("t", [{NUL: 1}]),
        "enqueue-notes-key": lambda b: b.enqueue("t", [], {"notes": {NUL: 1}}),
        "enqueue-notes-value": lambda b: b.enqueue("t", [], {"notes": {"k": NUL}}),
        "enqueue_many-task": lambda b: b.enqueue_many([("ok", [], None), (NUL, [], None)]),
        "enqueue_many-args": lambda b: b.enqueue_many([("ok", [NUL], None)]),
        "enqueue_many-notes": lambda b: b.enqueue_many([("ok", [], {"notes": {NUL: NUL}})]),
        "retry_job-queue": lambda b: b.retry_job(ACTIVE_JOB, 0, {"queue": NUL}),
        "finish_job-result": lambda b: b.finish_job(ACTIVE_JOB, 0, NUL),
        "finish_job-result-nested": lambda b: b.finish_job(ACTIVE_JOB, 0, {"out": [NUL]}),
        "finish_job-result-key": lambda b: b.finish_job(ACTIVE_JOB, 0, {NUL: 1}),
        "fail_job-result": lambda b: b.fail_job(ACTIVE_JOB, 0, NUL),
        "note-key": lambda b: b.note(INACTIVE_JOB, {NUL: 1}),
        "note-value": lambda b: b.note(INACTIVE_JOB, {"k": NUL}),
        "dequeue-queues": lambda b: b.dequeue(WORKER, 0, {"queues": [NUL]}),
        "dequeue-tasks": lambda b: b.dequeue(WORKER, 0, {"tasks": [NUL]}),
        "list_jobs-queues": lambda b: b.list_jobs(0, 10, {"queues": [NUL]}),
        "list_jobs-tasks": lambda b: b.list_jobs(0, 10, {"tasks": [NUL]}),
        "list_jobs-notes": lambda b: b.list_jobs(0, 10, {"notes": [NUL]}),
        "list_locks-names": lambda b: b.list_locks(0, 10, {"names": [NUL]}),
        "list_schedules-names": lambda b: b.list_schedules(0, 10, {"names": [NUL]}),
        "lock-name": lambda b: b.lock(NUL, 60),
        "unlock-name": lambda b: b.unlock(NUL),
        "register_worker-status-key": lambda b: b.register_worker(WORKER, {"status": {NUL: 1}}),
        "register_worker-status-value": lambda b: b.register_worker(WORKER, {"status": {"s": NUL}}),
        "broadcast-command": lambda b: b.broadcast(NUL),
        "broadcast-args": lambda b: b.broadcast("jobs", [NUL]),
        "schedule-name": lambda b: b.schedule(NUL, "@daily", "t"),
        "schedule-cron": lambda b: b.schedule("n", "@daily" + NUL, "t"),
        "schedule-task": lambda b: b.schedule("n", "@daily", NUL),
        "schedule-args": lambda b: b.schedule("n", "@daily", "t", [NUL]),
        "schedule-queue": lambda b: b.schedule("n", "@daily", "t", [], {"queue": NUL}),
        "schedule-notes": lambda b: b.schedule("n", "@daily", "t", [], {"notes": {NUL: 1}}),
        "unschedule-name": lambda b: b.unschedule(NUL),
        "pause_schedule-name": lambda b: b.pause_schedule(NUL),
        "resume_schedule-name": lambda b: b.resume_schedule(NUL),
    }.items()
]


# A lone surrogate cannot be encoded as UTF-8, so PostgreSQL can store it no more than a NUL:
# (label, call, the option the message must name).
SURROGATE = "lone \ud800 surrogate"
SURROGATE_CASES = [
    pytest.param(call, option, id=label)
    for label, (call, option) in {
        "enqueue-task": (lambda b: b.enqueue(SURROGATE), "task"),
        "enqueue-queue": (lambda b: b.enqueue("t", [], {"queue": SURROGATE}), "queue"),
        "enqueue-args": (lambda b: b.enqueue("t", [SURROGATE]), "args"),
        "enqueue-notes-key": (lambda b: b.enqueue("t", [], {"notes": {SURROGATE: 1}}), "notes"),
        "enqueue_many-args": (lambda b: b.enqueue_many([("t", [SURROGATE], None)]), "args"),
        "finish_job-result": (lambda b: b.finish_job(ACTIVE_JOB, 0, [SURROGATE]), "result"),
        "note-value": (lambda b: b.note(INACTIVE_JOB, {"k": SURROGATE}), "merge"),
        "lock-name": (lambda b: b.lock(SURROGATE, 60), "name"),
        "register_worker-status": (
            lambda b: b.register_worker(WORKER, {"status": {"s": SURROGATE}}), "status",
        ),
        "broadcast-command": (lambda b: b.broadcast(SURROGATE), "command"),
        "schedule-name": (lambda b: b.schedule(SURROGATE, "@daily", "t"), "name"),
    }.items()
]  # fmt: skip


def _snapshot(dsn: str) -> dict[str, list[Any]]:
    """Every row of every Minion table, and the sequences (a failed INSERT still advances one)."""
    state: dict[str, list[Any]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("minion_jobs", "minion_workers", "minion_locks", "minion_schedules"):
            query = sql.SQL("SELECT to_jsonb(t) FROM {} AS t ORDER BY id").format(
                sql.Identifier(table)
            )
            state[table] = conn.execute(query).fetchall()
            sequence = sql.SQL("SELECT last_value, is_called FROM {}").format(
                sql.Identifier(f"{table}_id_seq")
            )
            state[f"{table}_id_seq"] = conn.execute(sequence).fetchall()
    return state


@pytest.fixture
def seeded(backend: PgBackend) -> PgBackend:
    """A database with a job waiting, a job running on a worker, a lock and a schedule."""
    assert backend.register_worker(None, {"status": {"seeded": True}}) == WORKER
    assert backend.enqueue("waiting", [1], {"notes": {"k": "v"}}) == INACTIVE_JOB
    assert backend.enqueue("running", [2]) == ACTIVE_JOB
    claimed = backend.dequeue(WORKER, 0, {"id": ACTIVE_JOB})
    assert claimed is not None
    assert backend.lock("held", 3600)
    backend.schedule("nightly", "@daily", "report")
    return backend


@pytest.fixture(scope="module")
def unreachable() -> Iterator[PgBackend]:
    backend = PgBackend(UNREACHABLE, pooled=False, connect_timeout=1)
    yield backend
    backend.close()


@pytest.mark.parametrize(("call", "error", "match"), BAD_CASES)
def test_bad_arguments_are_refused_and_change_nothing(
    seeded: PgBackend, dsn: str, call: Call, error: Expected, match: str
) -> None:
    before = _snapshot(dsn)
    with pytest.raises(error, match=match):
        call(seeded)
    assert _snapshot(dsn) == before


@pytest.mark.parametrize(("call", "error", "match"), BAD_CASES)
def test_bad_arguments_are_refused_without_a_database(
    unreachable: PgBackend, call: Call, error: Expected, match: str
) -> None:
    with pytest.raises(error, match=match):
        call(unreachable)


@pytest.mark.parametrize("call", NUL_CASES)
def test_nul_characters_are_refused_and_change_nothing(
    seeded: PgBackend, dsn: str, call: Call
) -> None:
    before = _snapshot(dsn)
    with pytest.raises(ValueError, match="NUL") as raised:
        call(seeded)
    assert not isinstance(raised.value, psycopg.Error)
    assert raised.value.__cause__ is None
    assert _snapshot(dsn) == before


@pytest.mark.parametrize("call", NUL_CASES)
def test_nul_characters_are_refused_without_a_database(unreachable: PgBackend, call: Call) -> None:
    with pytest.raises(ValueError, match="NUL"):
        call(unreachable)


@pytest.mark.parametrize(("call", "option"), SURROGATE_CASES)
def test_unencodable_strings_are_refused_and_change_nothing(
    seeded: PgBackend, dsn: str, call: Call, option: str
) -> None:
    before = _snapshot(dsn)
    with pytest.raises(ValueError, match=rf"\b{option}\b"):
        call(seeded)
    assert _snapshot(dsn) == before


@pytest.mark.parametrize(("call", "option"), SURROGATE_CASES)
def test_unencodable_strings_are_refused_without_a_database(
    unreachable: PgBackend, call: Call, option: str
) -> None:
    with pytest.raises(ValueError, match=rf"\b{option}\b"):
        call(unreachable)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda b: b.stats(), id="stats"),
        pytest.param(lambda b: b.enqueue("task", [1], {"priority": 1}), id="enqueue"),
        pytest.param(lambda b: b.lock("name", 60), id="lock"),
        pytest.param(lambda b: b.list_jobs(0, 10), id="list_jobs"),
        pytest.param(lambda b: b.schedule("n", "@daily", "t"), id="schedule"),
    ],
)
def test_the_unreachable_backend_really_cannot_reach_a_database(
    unreachable: PgBackend, call: Call
) -> None:
    """The control for the tests above: good arguments do go to the (missing) database."""
    with pytest.raises(DatabaseUnavailableError):
        call(unreachable)


# Awkward strings round-trip exactly

AWKWARD = [
    pytest.param("'", id="single-quote"),
    pytest.param('"', id="double-quote"),
    pytest.param("it's \"quoted\" ''doubled''", id="mixed-quotes"),
    pytest.param("--", id="comment"),
    pytest.param("x'; DROP TABLE minion_jobs; --", id="injection"),
    pytest.param("; DROP TABLE minion_jobs; --", id="drop-table"),
    pytest.param("/* open comment", id="block-comment"),
    pytest.param("back\\slash \\\\ \\n \\' \\x41", id="backslashes"),
    pytest.param("\\u0000 and \\x00 spelled out", id="escaped-nul-text"),
    pytest.param("%s %(x)s %% %d {} {0} $1 $$ ? :name", id="placeholders"),
    pytest.param("line\nfeed\r\ncrlf\ttab\x01\x07\x08\x0b\x0c\x1b\x1f\x7f", id="control"),
    pytest.param("\x85\u2028\u2029\ufeff\u200b", id="unicode-separators"),
    pytest.param("\U0001f418 \U0001f389 \U0001f469\U0001f3fd\u200d\U0001f4bb", id="emoji"),
    pytest.param("\u00fcmlaut \u00df \u4e2d\u6587 \u0639\u0631\u0628\u064a", id="non-latin"),
    pytest.param("  padded  ", id="spaces"),
    pytest.param("x" * 10_000, id="long"),
]


def _select(dsn: str, query: str, params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def _tables_intact(dsn: str) -> bool:
    rows = _select(
        dsn,
        "SELECT COUNT(to_regclass(name)) FROM unnest(%s::text[]) AS name",
        [["minion_jobs", "minion_workers", "minion_locks", "minion_schedules"]],
    )
    return bool(rows == [(4,)])


@pytest.mark.parametrize("text", AWKWARD)
def test_job_task_queue_args_and_notes_round_trip(backend: PgBackend, dsn: str, text: str) -> None:
    args = [text, {text: [text, ""]}, ""]
    notes = {text: text, "plain": [text]}
    job_id = backend.enqueue(text, args, {"queue": text, "notes": notes})

    job = backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    assert (job["task"], job["queue"], job["args"], job["notes"]) == (text, text, args, notes)
    # Stored as given, not merely decoded back by the same code that encoded it.
    assert _select(dsn, "SELECT task, queue, args, notes FROM minion_jobs", None) == [
        (text, text, args, notes)
    ]
    filters = {"tasks": [text], "queues": [text], "notes": [text]}
    assert [j["id"] for j in backend.list_jobs(0, 10, filters)["jobs"]] == [job_id]

    worker_id = backend.register_worker()
    claimed = backend.dequeue(worker_id, 0, {"queues": [text], "tasks": [text]})
    assert claimed is not None
    assert (claimed["id"], claimed["task"], claimed["args"]) == (job_id, text, args)
    assert _tables_intact(dsn)


@pytest.mark.parametrize("text", AWKWARD)
def test_enqueue_many_round_trips_through_its_json_batch(
    backend: PgBackend, dsn: str, text: str
) -> None:
    ids = backend.enqueue_many([
        (text, [text], {"queue": text, "notes": {text: text}}),
        ("plain", [{text: text}], None),
    ])  # fmt: skip
    rows = _select(dsn, "SELECT id, task, queue, args, notes FROM minion_jobs ORDER BY id", None)
    assert rows == [
        (ids[0], text, text, [text], {text: text}),
        (ids[1], "plain", "default", [{text: text}], {}),
    ]


@pytest.mark.parametrize("text", AWKWARD)
def test_results_and_notes_round_trip(backend: PgBackend, dsn: str, text: str) -> None:
    worker_id = backend.register_worker()
    finished = backend.enqueue("finishing")
    failed = backend.enqueue("failing")
    for _ in range(2):
        assert backend.dequeue(worker_id, 0) is not None
    result = {text: [text, None, 1.5], "text": text}
    assert backend.finish_job(finished, 0, result)
    assert backend.fail_job(failed, 0, text)
    assert backend.note(finished, {text: text, "n": [text]})

    jobs = {job["id"]: job for job in backend.list_jobs(0, 10)["jobs"]}
    assert jobs[finished]["result"] == result
    assert jobs[finished]["notes"] == {text: text, "n": [text]}
    assert jobs[failed]["result"] == text
    assert _select(dsn, "SELECT result FROM minion_jobs WHERE id = %s", [failed]) == [(text,)]

    assert backend.note(finished, {text: None})
    assert backend.list_jobs(0, 1, {"ids": [finished]})["jobs"][0]["notes"] == {"n": [text]}


@pytest.mark.parametrize("text", AWKWARD)
def test_lock_names_round_trip(backend: PgBackend, dsn: str, text: str) -> None:
    assert backend.lock(text, 3600) is True
    assert backend.lock(text, 3600) is False
    assert backend.lock(text + "-other", 3600) is True
    listed = backend.list_locks(0, 10, {"names": [text]})
    assert [lock["name"] for lock in listed["locks"]] == [text]
    assert listed["total"] == 1
    assert _select(dsn, "SELECT name FROM minion_locks ORDER BY id", None) == [
        (text,), (text + "-other",)
    ]  # fmt: skip
    assert backend.unlock(text) is True
    assert backend.unlock(text) is False
    assert _tables_intact(dsn)


@pytest.mark.parametrize("text", AWKWARD)
def test_worker_status_and_inbox_round_trip(backend: PgBackend, dsn: str, text: str) -> None:
    status = {text: [text], "label": text}
    worker_id = backend.register_worker(None, {"status": status})
    assert backend.list_workers(0, 10)["workers"][0]["status"] == status
    assert _select(dsn, "SELECT status FROM minion_workers", None) == [(status,)]

    assert backend.broadcast(text, [text, {text: text}], [worker_id]) is True
    assert backend.receive(worker_id) == [[text, text, {text: text}]]


@pytest.mark.parametrize("text", AWKWARD)
def test_schedules_round_trip_into_their_jobs(backend: PgBackend, dsn: str, text: str) -> None:
    options = {"queue": text, "notes": {text: text}}
    schedule_id = backend.schedule(text, "@daily", text, [text], options)
    info = backend.list_schedules(0, 10, {"names": [text]})["schedules"][0]
    assert (info["id"], info["name"], info["task"]) == (schedule_id, text, text)
    assert info["args"] == [text]
    assert (info["queue"], info["notes"]) == (text, {text: text})

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE minion_schedules SET next_run = NOW() - INTERVAL '1 minute'")
    [dispatched] = backend.dispatch_schedules()
    assert dispatched["name"] == text
    job = backend.list_jobs(0, 1, {"ids": [dispatched["job"]]})["jobs"][0]
    assert (job["task"], job["args"], job["queue"], job["notes"]) == (
        text, [text], text, {text: text},
    )  # fmt: skip

    assert backend.pause_schedule(text) is True
    assert backend.resume_schedule(text) is True
    assert backend.unschedule(text) is True
    assert _tables_intact(dsn)


def test_injection_attempts_leave_every_table_and_row_in_place(
    backend: PgBackend, dsn: str
) -> None:
    """All the awkward strings at once, through every writer; afterwards the counts add up."""
    texts = [param.values[0] for param in AWKWARD]
    worker_id = backend.register_worker(None, {"status": dict.fromkeys(texts, 1)})
    for text in texts:
        backend.enqueue(text, [text], {"queue": text, "notes": {text: text}})
        backend.lock(text, 60)
        backend.broadcast(text, [text])
    backend.enqueue_many([(text, [text], {"queue": text}) for text in texts])
    counts = _select(
        dsn,
        "SELECT (SELECT COUNT(*) FROM minion_jobs), (SELECT COUNT(*) FROM minion_locks),"
        " (SELECT jsonb_array_length(inbox) FROM minion_workers WHERE id = %s)",
        [worker_id],
    )
    assert counts == [(2 * len(texts), len(texts), len(texts))]
    assert _tables_intact(dsn)


def test_user_strings_travel_as_parameters_never_in_the_statement_text(
    backend: PgBackend, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement sent is recorded: the user's strings appear in parameters only."""
    marker = "zq'marker\"--;"
    statements: list[tuple[str, str]] = []
    execute = psycopg.Cursor.execute

    def recording(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        text = query if isinstance(query, str | bytes) else query.as_string(self)
        statements.append((str(text), repr(params)))
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)
    worker_id = backend.register_worker(None, {"status": {marker: marker}})
    job_id = backend.enqueue(marker, [marker], {"queue": marker, "notes": {marker: 1}})
    backend.enqueue_many([(marker, [marker], {"queue": marker})])
    backend.list_jobs(0, 10, {"queues": [marker], "tasks": [marker], "notes": [marker]})
    assert backend.dequeue(worker_id, 0, {"queues": [marker], "tasks": [marker]}) is not None
    backend.note(job_id, {marker: marker})
    backend.finish_job(job_id, 0, marker)
    backend.lock(marker, 60)
    backend.list_locks(0, 10, {"names": [marker]})
    backend.unlock(marker)
    backend.broadcast(marker, [marker])
    backend.schedule(marker, "@daily", marker, [marker], {"queue": marker})
    backend.list_schedules(0, 10, {"names": [marker]})
    backend.pause_schedule(marker)
    backend.unschedule(marker)
    monkeypatch.undo()

    assert len(statements) >= 15
    assert [text for text, _ in statements if "zq" in text] == []
    assert sum("zq" in params for _, params in statements) >= 15
    assert _tables_intact(dsn)
