"""Minion 12's cron schedules (schema 25) on PgBackend, against a real PostgreSQL.

Checklist items 29-40, plus what schedules add to ``reset``, ``stats`` and to a database still at
schema 24. Schedules are made due by moving ``next_run`` back on a connection of the test's own,
never by waiting for the clock. Expected run times are computed from the database's ``NOW()``
(``last_run`` is the dispatch transaction's ``NOW()``), so no assertion depends on how fast the
machine is. The Minion facade's ``enqueue`` events of item 37 belong to a layer above the backend
and are not covered here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from helpers.sql import db_now, execute

from minion_daemon.backend import PgBackend
from minion_daemon.errors import CronError, SchemaError
from minion_daemon.model import JobInfo, ScheduleInfo

MakeDatabase = Callable[[int | None], str]

SCHEDULE_FIELDS = {
    "id",
    "args",
    "attempts",
    "created",
    "cron",
    "expire",
    "last_job",
    "last_run",
    "lax",
    "name",
    "next_run",
    "notes",
    "paused",
    "priority",
    "queue",
    "task",
}

DISPATCH_LOCK = "SELECT pg_advisory_xact_lock(hashtext('minion.schedules'))"




def _count(dsn: str, table: str) -> int:
    queries = {
        "jobs": "SELECT COUNT(*) FROM minion_jobs",
        "schedules": "SELECT COUNT(*) FROM minion_schedules",
    }
    return int(execute(dsn, queries[table])[0][0])


def _make_due(dsn: str, name: str, overdue: str = "1 minute") -> None:
    """Move the schedule's next run into the past by ``overdue`` (a PostgreSQL interval)."""
    execute(
        dsn,
        "UPDATE minion_schedules SET next_run = NOW() - %s::interval WHERE name = %s",
        [overdue, name],
    )


def _stored_next_run(dsn: str, name: str) -> float:
    rows = execute(
        dsn,
        "SELECT EXTRACT(EPOCH FROM next_run)::float8 FROM minion_schedules WHERE name = %s",
        [name],
    )
    return float(rows[0][0])


def _schedule(backend: PgBackend, name: str) -> ScheduleInfo:
    found = backend.list_schedules(0, 10, {"names": [name]})["schedules"]
    assert len(found) == 1, f"expected exactly one schedule named {name!r}, got {found}"
    return found[0]


def _job(backend: PgBackend, job_id: int) -> JobInfo:
    found = backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert len(found) == 1, f"job {job_id} is missing"
    return found[0]


def _next_minute_step(after: float, step_minutes: int) -> float:
    """The first minute strictly after ``after`` whose minute-of-epoch is a multiple of step."""
    period = 60 * step_minutes
    return math.floor(after / period) * period + period


def _next_daily(after: float, hour: int, minute: int) -> float:
    """The first ``hour:minute`` UTC strictly after ``after``."""
    moment = datetime.fromtimestamp(after, UTC)
    candidate = moment.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate.timestamp() <= after:
        candidate += timedelta(days=1)
    return candidate.timestamp()


def _next_new_year(after: float) -> float:
    year = datetime.fromtimestamp(after, UTC).year
    candidate = datetime(year, 1, 1, tzinfo=UTC)
    if candidate.timestamp() <= after:
        candidate = datetime(year + 1, 1, 1, tzinfo=UTC)
    return candidate.timestamp()


# 29-35: creating, changing and listing schedules


def test_29_schedule_returns_an_id_and_stores_minions_defaults(
    backend: PgBackend, dsn: str
) -> None:
    before = db_now(dsn)
    schedule_id = backend.schedule("new_year", "0 0 1 1 *", "celebrate")
    after = db_now(dsn)

    assert isinstance(schedule_id, int)
    assert schedule_id > 0
    info = _schedule(backend, "new_year")
    assert set(info) == SCHEDULE_FIELDS
    assert info["id"] == schedule_id
    assert {key: info[key] for key in SCHEDULE_FIELDS - {"id", "created", "next_run"}} == {
        "args": [],
        "attempts": 1,
        "cron": "0 0 1 1 *",
        "expire": None,
        "last_job": None,
        "last_run": None,
        "lax": False,
        "name": "new_year",
        "notes": {},
        "paused": False,
        "priority": 0,
        "queue": "default",
        "task": "celebrate",
    }
    assert info["paused"] == 0
    assert before <= info["created"] <= after
    assert info["next_run"] > after
    assert info["next_run"] == _next_new_year(after)
    assert _count(dsn, "schedules") == 1


def test_29_next_run_is_the_first_matching_minute_after_now(backend: PgBackend, dsn: str) -> None:
    before = db_now(dsn)
    backend.schedule("every_minute", "* * * * *", "tick")
    after = db_now(dsn)

    next_run = _schedule(backend, "every_minute")["next_run"]
    assert next_run % 60 == 0
    assert before < next_run <= after + 60
    assert next_run in {_next_minute_step(before, 1), _next_minute_step(after, 1)}


def test_29_every_schedule_gets_its_own_id(backend: PgBackend) -> None:
    ids = [backend.schedule(f"s{n}", "@daily", "task") for n in range(3)]
    assert len(set(ids)) == 3
    assert ids == sorted(ids)


def test_30_rescheduling_with_the_same_cron_keeps_next_run(backend: PgBackend, dsn: str) -> None:
    schedule_id = backend.schedule("report", "0 0 1 1 *", "old_task", [1])
    # A marker no cron computation would produce, so "kept" cannot be a coincidence.
    execute(
        dsn,
        "UPDATE minion_schedules SET next_run = NOW() + INTERVAL '3 days 7 seconds'"
        " WHERE name = 'report'",
    )
    marker = _stored_next_run(dsn, "report")
    assert backend.pause_schedule("report")
    created = _schedule(backend, "report")["created"]

    assert backend.schedule("report", "0 0 1 1 *", "new_task", [2], {"queue": "q"}) == schedule_id
    info = _schedule(backend, "report")
    assert info["next_run"] == marker
    assert (info["task"], info["args"], info["queue"]) == ("new_task", [2], "q")
    assert info["paused"] is True
    assert info["created"] == created
    assert _count(dsn, "schedules") == 1


def test_30_a_different_cron_updates_cron_and_recomputes_next_run(
    backend: PgBackend, dsn: str
) -> None:
    schedule_id = backend.schedule("report", "0 0 1 1 *", "task")
    execute(
        dsn,
        "UPDATE minion_schedules SET next_run = NOW() + INTERVAL '3 days 7 seconds'"
        " WHERE name = 'report'",
    )
    marker = _stored_next_run(dsn, "report")

    before = db_now(dsn)
    assert backend.schedule("report", "30 12 * * *", "task") == schedule_id
    after = db_now(dsn)
    info = _schedule(backend, "report")
    assert info["cron"] == "30 12 * * *"
    assert info["next_run"] != marker
    assert info["next_run"] in {_next_daily(before, 12, 30), _next_daily(after, 12, 30)}
    assert _count(dsn, "schedules") == 1


def test_31_pause_and_resume_toggle_paused(backend: PgBackend, dsn: str) -> None:
    backend.schedule("toggle", "@hourly", "task")
    assert _schedule(backend, "toggle")["paused"] == 0

    assert backend.pause_schedule("toggle") is True
    assert _schedule(backend, "toggle")["paused"] == 1
    assert execute(dsn, "SELECT paused FROM minion_schedules WHERE name = 'toggle'") == [(True,)]
    # Pausing again still finds the schedule.
    assert backend.pause_schedule("toggle") is True
    assert _schedule(backend, "toggle")["paused"] is True

    assert backend.resume_schedule("toggle") is True
    assert _schedule(backend, "toggle")["paused"] is False
    assert execute(dsn, "SELECT paused FROM minion_schedules WHERE name = 'toggle'") == [(False,)]


@pytest.mark.parametrize("operation", ["pause_schedule", "resume_schedule"])
def test_31_pause_and_resume_of_an_unknown_name_return_false(
    backend: PgBackend, dsn: str, operation: str
) -> None:
    backend.schedule("known", "@hourly", "task")
    assert getattr(backend, operation)("unknown") is False
    assert getattr(backend, operation)("") is False
    assert _schedule(backend, "known")["paused"] is False
    assert _count(dsn, "schedules") == 1


def test_32_options_and_args_are_stored_as_given(backend: PgBackend, dsn: str) -> None:
    args = [1, "two", {"three": [3, None, True]}, 4.5]
    options = {
        "attempts": 3,
        "expire": 600,
        "lax": True,
        "notes": {"owner": "ops", "nested": {"k": [1, 2]}},
        "priority": -7,
        "queue": "reports",
    }
    backend.schedule("configured", "*/5 * * * *", "report", args, options)
    info = _schedule(backend, "configured")
    assert info["args"] == args
    assert {key: info[key] for key in options} == options
    assert info["lax"] is True
    stored = execute(
        dsn,
        "SELECT args, attempts, expire, lax, notes, priority, queue, task FROM minion_schedules",
    )
    assert stored == [(args, 3, 600, True, options["notes"], -7, "reports", "report")]


def test_32_rescheduling_without_options_restores_the_defaults(backend: PgBackend) -> None:
    options = {
        "attempts": 3,
        "expire": 600,
        "lax": True,
        "notes": {"a": 1},
        "priority": 5,
        "queue": "q",
    }
    backend.schedule("configured", "@hourly", "report", [1, 2], options)
    backend.schedule("configured", "@hourly", "report")
    info = _schedule(backend, "configured")
    assert {key: info[key] for key in (*options, "args")} == {
        "attempts": 1,
        "expire": None,
        "lax": False,
        "notes": {},
        "priority": 0,
        "queue": "default",
        "args": [],
    }


def test_32_options_set_to_none_take_the_defaults(backend: PgBackend) -> None:
    backend.schedule(
        "nones",
        "@hourly",
        "report",
        None,
        dict.fromkeys(("attempts", "expire", "lax", "notes", "priority", "queue")),
    )
    info = _schedule(backend, "nones")
    assert (info["args"], info["attempts"], info["expire"]) == ([], 1, None)
    assert (info["lax"], info["notes"], info["priority"], info["queue"]) == (
        False,
        {},
        0,
        "default",
    )


def test_33_list_schedules_filters_by_names_and_ids_with_totals(backend: PgBackend) -> None:
    ids = {name: backend.schedule(name, "@daily", "task") for name in ("a", "b", "c", "d")}

    def listed(options: dict[str, Any] | None, offset: int = 0, limit: int = 10) -> Any:
        page = backend.list_schedules(offset, limit, options)
        return [item["name"] for item in page["schedules"]], page["total"]

    assert listed(None) == (["d", "c", "b", "a"], 4)
    assert listed({"names": ["b", "d", "missing"]}) == (["d", "b"], 2)
    assert listed({"ids": [ids["a"], ids["c"]]}) == (["c", "a"], 2)
    assert listed({"names": ["a", "b"], "ids": [ids["b"], ids["c"]]}) == (["b"], 1)
    assert listed({"before": ids["c"]}) == (["b", "a"], 2)
    assert listed({"names": ["missing"]}) == ([], 0)
    assert listed({"ids": [10_000]}) == ([], 0)
    assert listed({"names": []}) == ([], 0)
    assert listed(None, offset=1, limit=2) == (["c", "b"], 4)
    assert listed({"names": ["a", "b", "c"]}, offset=2, limit=5) == (["a"], 3)
    assert listed(None, offset=10, limit=5)[0] == []


def test_33_list_schedules_reports_last_run_and_paused_as_stored(
    backend: PgBackend, dsn: str
) -> None:
    backend.schedule("s", "@hourly", "task")
    execute(
        dsn,
        "UPDATE minion_schedules SET last_job = 42, paused = TRUE,"
        " last_run = TO_TIMESTAMP(1700000000.5)",
    )
    info = _schedule(backend, "s")
    assert (info["last_job"], info["last_run"], info["paused"]) == (42, 1700000000.5, True)


INVALID_CRONS = [
    pytest.param(
        "not a cron", r'Invalid cron expression "not a cron": expected 5 fields', id="three-fields"
    ),
    pytest.param("* * * * * *", r"Invalid cron expression .*expected 5 fields", id="six-fields"),
    pytest.param(" * * * * *", r"Invalid cron expression .*expected 5 fields", id="leading-space"),
    pytest.param("@every", r'Unknown cron nickname "@every"', id="nickname"),
    pytest.param("@DAILY", r'Unknown cron nickname "@DAILY"', id="nickname-upper-case"),
    pytest.param("60 * * * *", r"Value out of range in minute field", id="minute-range"),
    pytest.param("* 24 * * *", r"Value out of range in hour field", id="hour-range"),
    pytest.param("5-1 * * * *", r"Value out of range in minute field", id="reversed-range"),
    pytest.param("*/0 * * * *", r'Invalid step ".*" in minute field', id="zero-step"),
    pytest.param("* * * FOO *", r'Invalid name "FOO" in month field', id="month-name"),
    pytest.param("0 0 31 2 *", r"No matching time found for cron expression", id="never-matches"),
]


@pytest.mark.parametrize(("cron", "message"), INVALID_CRONS)
def test_34_an_invalid_cron_raises_and_creates_no_row(
    backend: PgBackend, dsn: str, cron: str, message: str
) -> None:
    with pytest.raises(CronError, match=message):
        backend.schedule("bad", cron, "task")
    assert _count(dsn, "schedules") == 0


def test_34_invalid_cron_error_is_a_value_error_matching_invalid_cron(
    backend: PgBackend, dsn: str
) -> None:
    with pytest.raises(ValueError, match="Invalid cron"):
        backend.schedule("bad", "not a cron", "task")
    assert _count(dsn, "schedules") == 0


def test_34_an_invalid_cron_leaves_an_existing_schedule_untouched(
    backend: PgBackend, dsn: str
) -> None:
    backend.schedule("kept", "@hourly", "task", [1])
    before = execute(dsn, "SELECT to_jsonb(s) FROM minion_schedules AS s")
    with pytest.raises(CronError, match="Invalid cron"):
        backend.schedule("kept", "every hour please", "other", [2])
    assert execute(dsn, "SELECT to_jsonb(s) FROM minion_schedules AS s") == before


def test_35_unschedule_returns_true_once_then_false(backend: PgBackend, dsn: str) -> None:
    backend.schedule("gone", "@hourly", "task")
    backend.schedule("stays", "@hourly", "task")
    assert backend.unschedule("gone") is True
    assert backend.unschedule("gone") is False
    assert backend.unschedule("never_existed") is False
    assert [item["name"] for item in backend.list_schedules(0, 10)["schedules"]] == ["stays"]
    assert _count(dsn, "schedules") == 1


# 36-40: dispatch


def test_36_dispatch_returns_nothing_when_nothing_is_due(backend: PgBackend, dsn: str) -> None:
    assert backend.dispatch_schedules() == []
    backend.schedule("later", "@hourly", "task")
    backend.schedule("much_later", "0 0 1 1 *", "task")
    next_runs = {name: _stored_next_run(dsn, name) for name in ("later", "much_later")}

    assert backend.dispatch_schedules() == []
    assert _count(dsn, "jobs") == 0
    assert {name: _stored_next_run(dsn, name) for name in next_runs} == next_runs
    assert _schedule(backend, "later")["last_job"] is None


def test_37_a_due_schedule_makes_one_job_with_the_schedules_options(
    backend: PgBackend, dsn: str
) -> None:
    args = [1, {"two": [2, "zwei"]}]
    options = {
        "attempts": 4,
        "expire": 900,
        "lax": True,
        "notes": {"from": "cron"},
        "priority": 9,
        "queue": "nightly",
    }
    schedule_id = backend.schedule("report", "0 3 * * *", "build_report", args, options)
    backend.schedule("not_due", "0 3 * * *", "other")
    _make_due(dsn, "report")

    dispatched = backend.dispatch_schedules()
    assert len(dispatched) == 1
    job_id = dispatched[0]["job"]
    assert dispatched == [{"id": schedule_id, "name": "report", "job": job_id}]
    assert _count(dsn, "jobs") == 1

    job = _job(backend, job_id)
    copied = ("args", "attempts", "lax", "notes", "priority", "queue", "task")
    assert {key: job[key] for key in copied} == {
        "args": args,
        "attempts": 4,
        "lax": True,
        "notes": {"from": "cron"},
        "priority": 9,
        "queue": "nightly",
        "task": "build_report",
    }
    assert job["parents"] == []
    assert (job["state"], job["retries"], job["worker"]) == ("inactive", 0, None)
    assert job["delayed"] == job["created"]
    assert job["expires"] is not None
    assert job["expires"] - job["created"] == pytest.approx(900, abs=0.01)

    info = _schedule(backend, "report")
    assert info["last_job"] == job_id
    assert info["last_run"] == pytest.approx(job["created"], abs=0.01)
    assert info["next_run"] > info["last_run"]
    assert info["next_run"] == _next_daily(info["last_run"], 3, 0)
    assert _schedule(backend, "not_due")["last_job"] is None

    assert backend.dispatch_schedules() == []
    assert _count(dsn, "jobs") == 1


def test_37_the_dispatched_job_can_be_dequeued_like_any_other(backend: PgBackend, dsn: str) -> None:
    backend.schedule("report", "@daily", "build_report", ["x"], {"queue": "nightly"})
    _make_due(dsn, "report")
    [dispatched] = backend.dispatch_schedules()
    worker_id = backend.register_worker()
    job = backend.dequeue(worker_id, 0, {"queues": ["nightly"], "tasks": ["build_report"]})
    assert job is not None
    assert (job["id"], job["task"], job["args"], job["retries"]) == (
        dispatched["job"],
        "build_report",
        ["x"],
        0,
    )


def test_37_several_due_schedules_are_dispatched_together(backend: PgBackend, dsn: str) -> None:
    ids = {name: backend.schedule(name, "@daily", f"task_{name}", [name]) for name in "abc"}
    for name in ids:
        _make_due(dsn, name)

    dispatched = backend.dispatch_schedules()
    assert sorted((item["id"], item["name"]) for item in dispatched) == sorted(
        (schedule_id, name) for name, schedule_id in ids.items()
    )
    assert len({item["job"] for item in dispatched}) == 3
    for item in dispatched:
        job = _job(backend, item["job"])
        assert (job["task"], job["args"]) == (f"task_{item['name']}", [item["name"]])
        assert _schedule(backend, item["name"])["last_job"] == item["job"]
    assert backend.dispatch_schedules() == []


@pytest.mark.parametrize(
    ("cron", "overdue", "period"),
    [
        ("@hourly", "1 hour", 3600),
        ("0 * * * *", "1 hour 30 minutes", 3600),
        ("* * * * *", "3 days", 60),
        ("0 0 * * *", "10 days", 86400),
    ],
)
def test_38_an_overdue_schedule_makes_exactly_one_job(
    backend: PgBackend, dsn: str, cron: str, overdue: str, period: int
) -> None:
    backend.schedule("late", cron, "task")
    _make_due(dsn, "late", overdue)

    dispatched = backend.dispatch_schedules()
    assert len(dispatched) == 1
    assert _count(dsn, "jobs") == 1
    info = _schedule(backend, "late")
    # Missed runs are skipped: the next run is the first one after the dispatch, not after the
    # missed slot.
    assert info["last_run"] < info["next_run"] <= info["last_run"] + period
    assert info["next_run"] == math.floor(info["last_run"] / period) * period + period


def test_39_a_paused_due_schedule_is_skipped_until_resumed(backend: PgBackend, dsn: str) -> None:
    backend.schedule("paused", "@daily", "task")
    backend.pause_schedule("paused")
    _make_due(dsn, "paused")
    due_at = _stored_next_run(dsn, "paused")

    assert backend.dispatch_schedules() == []
    assert _count(dsn, "jobs") == 0
    assert _stored_next_run(dsn, "paused") == due_at
    assert _schedule(backend, "paused")["last_job"] is None

    backend.resume_schedule("paused")
    dispatched = backend.dispatch_schedules()
    assert [item["name"] for item in dispatched] == ["paused"]
    assert _count(dsn, "jobs") == 1


def test_39_only_the_unpaused_of_two_due_schedules_fires(backend: PgBackend, dsn: str) -> None:
    backend.schedule("paused", "@daily", "task")
    backend.schedule("running", "@daily", "task")
    backend.pause_schedule("paused")
    _make_due(dsn, "paused")
    _make_due(dsn, "running")
    assert [item["name"] for item in backend.dispatch_schedules()] == ["running"]
    assert _count(dsn, "jobs") == 1


def _dispatch_in_thread(backend: PgBackend, timeout: float) -> tuple[bool, Any]:
    """Dispatch on another thread: (finished within ``timeout``, its result or exception)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = backend.dispatch_schedules()
        except Exception as error:  # noqa: BLE001 - handed back to the test to re-raise
            outcome["result"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), outcome.get("result")


def test_40_dispatch_returns_at_once_while_another_session_holds_the_lock(
    backend: PgBackend, dsn: str
) -> None:
    backend.schedule("locked_out", "@daily", "task")
    _make_due(dsn, "locked_out")
    backend.stats()  # the first call connects and checks the schema; keep that out of the wait

    holder = psycopg.connect(dsn)  # not autocommit: the lock lives until the commit
    try:
        holder.execute(DISPATCH_LOCK)
        # A dispatcher that waited for the lock would still be waiting when the join gives up.
        finished, result = _dispatch_in_thread(backend, timeout=30)
        assert finished, "dispatch_schedules blocked on the advisory lock"
        if isinstance(result, Exception):
            raise result
        assert result == []
        assert _count(dsn, "jobs") == 0
        assert _schedule(backend, "locked_out")["last_job"] is None
    finally:
        holder.commit()
        holder.close()

    dispatched = backend.dispatch_schedules()
    assert [item["name"] for item in dispatched] == ["locked_out"]
    assert _count(dsn, "jobs") == 1


def test_40_a_session_level_lock_on_the_same_key_also_keeps_dispatch_out(
    backend: PgBackend, dsn: str
) -> None:
    backend.schedule("locked_out", "@daily", "task")
    _make_due(dsn, "locked_out")
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext('minion.schedules'))")
        try:
            finished, result = _dispatch_in_thread(backend, timeout=30)
        finally:
            holder.execute("SELECT pg_advisory_unlock(hashtext('minion.schedules'))")
    assert finished, "dispatch_schedules blocked on the advisory lock"
    assert result == []
    assert _count(dsn, "jobs") == 0
    assert len(backend.dispatch_schedules()) == 1


def test_40_dispatch_releases_the_lock_when_it_commits(backend: PgBackend, dsn: str) -> None:
    backend.schedule("s", "@daily", "task")
    _make_due(dsn, "s")
    assert len(backend.dispatch_schedules()) == 1
    with psycopg.connect(dsn, autocommit=True) as other:
        row = other.execute("SELECT pg_try_advisory_lock(hashtext('minion.schedules'))").fetchone()
        assert row == (True,)
        other.execute("SELECT pg_advisory_unlock(hashtext('minion.schedules'))")


def test_40_concurrent_dispatchers_make_one_job_per_due_schedule(
    backend: PgBackend, dsn: str
) -> None:
    names = [f"s{n}" for n in range(5)]
    for name in names:
        backend.schedule(name, "@daily", "task")
        _make_due(dsn, name)
    others = [PgBackend(dsn, min_size=0, max_size=1) for _ in range(3)]
    try:
        for other in others:
            other.stats()
        barrier = threading.Barrier(len(others))
        results: list[Any] = []

        def dispatch(other: PgBackend) -> None:
            barrier.wait(timeout=30)
            try:
                results.append(other.dispatch_schedules())
            except Exception as error:  # noqa: BLE001 - handed back to the test to re-raise
                results.append(error)

        threads = [threading.Thread(target=dispatch, args=(other,)) for other in others]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for other in others:
            other.close()

    assert len(results) == len(others)
    for result in results:
        if isinstance(result, Exception):
            raise result
    dispatched = [item["name"] for result in results for item in result]
    assert sorted(dispatched) == names
    assert _count(dsn, "jobs") == 5


def test_dispatch_is_one_transaction_a_broken_schedule_rolls_back_every_job(
    backend: PgBackend, dsn: str
) -> None:
    """A stored cron that cannot be computed fails the dispatch as a whole, as Perl's does."""
    backend.schedule("good", "@daily", "task")
    backend.schedule("broken", "@daily", "task")
    for name in ("good", "broken"):
        _make_due(dsn, name)
    execute(dsn, "UPDATE minion_schedules SET cron = '0 0 31 2 *' WHERE name = 'broken'")
    due_at = {name: _stored_next_run(dsn, name) for name in ("good", "broken")}

    with pytest.raises(CronError, match="broken"):
        backend.dispatch_schedules()
    assert _count(dsn, "jobs") == 0
    assert {name: _stored_next_run(dsn, name) for name in due_at} == due_at
    assert _schedule(backend, "good")["last_job"] is None


# reset and stats


def test_28_reset_all_empties_the_schedules_and_restarts_their_ids(
    backend: PgBackend, dsn: str
) -> None:
    backend.schedule("a", "@daily", "task")
    backend.schedule("b", "@daily", "task")
    _make_due(dsn, "a")
    backend.dispatch_schedules()
    backend.lock("held", 3600)

    backend.reset({"locks": True})
    assert _count(dsn, "schedules") == 2

    backend.reset({"all": True})
    assert _count(dsn, "schedules") == 0
    assert _count(dsn, "jobs") == 0
    assert backend.list_schedules(0, 10) == {"schedules": [], "total": 0}
    assert backend.schedule("c", "@daily", "task") == 1


def test_42_stats_count_schedules_and_inactive_schedules(backend: PgBackend) -> None:
    stats = backend.stats()
    assert (stats["schedules"], stats["inactive_schedules"]) == (0, 0)

    for name in ("a", "b", "c"):
        backend.schedule(name, "@daily", "task")
    backend.pause_schedule("b")
    stats = backend.stats()
    assert (stats["schedules"], stats["inactive_schedules"]) == (2, 1)

    backend.pause_schedule("c")
    backend.unschedule("a")
    stats = backend.stats()
    assert (stats["schedules"], stats["inactive_schedules"]) == (0, 2)

    backend.resume_schedule("b")
    stats = backend.stats()
    assert (stats["schedules"], stats["inactive_schedules"]) == (1, 1)


# A database still at schema 24 (a Perl Minion 10.x/11.x shares it)


@pytest.fixture
def backend_24(make_database: MakeDatabase) -> Iterator[tuple[PgBackend, str]]:
    dsn = make_database(24)
    backend = PgBackend(dsn, max_schema_version=24, min_size=0, max_size=2)
    yield backend, dsn
    backend.close()


SCHEDULE_OPERATIONS = [
    pytest.param(lambda b: b.schedule("s", "@daily", "task"), "schedule", id="schedule"),
    pytest.param(lambda b: b.unschedule("s"), "unschedule", id="unschedule"),
    pytest.param(lambda b: b.pause_schedule("s"), "pause_schedule", id="pause_schedule"),
    pytest.param(lambda b: b.resume_schedule("s"), "resume_schedule", id="resume_schedule"),
    pytest.param(lambda b: b.list_schedules(0, 10), "list_schedules", id="list_schedules"),
    pytest.param(lambda b: b.dispatch_schedules(), "dispatch_schedules", id="dispatch_schedules"),
]


@pytest.mark.parametrize(("call", "operation"), SCHEDULE_OPERATIONS)
def test_schedule_operations_at_schema_24_raise_schema_error(
    backend_24: tuple[PgBackend, str], call: Callable[[PgBackend], object], operation: str
) -> None:
    backend, dsn = backend_24
    with pytest.raises(SchemaError, match=rf"{operation}.*\b25\b"):
        call(backend)
    # Nothing was migrated behind the caller's back.
    assert execute(dsn, "SELECT version FROM mojo_migrations WHERE name = 'minion'") == [(24,)]
    assert execute(dsn, "SELECT to_regclass('minion_schedules')") == [(None,)]


def test_schema_24_stats_and_reset_work_without_schedules(
    backend_24: tuple[PgBackend, str],
) -> None:
    backend, dsn = backend_24
    backend.enqueue("task")
    assert backend.has_schedules is False
    stats = backend.stats()
    assert "schedules" not in stats
    assert "inactive_schedules" not in stats
    assert stats["inactive_jobs"] == 1
    backend.reset({"all": True})
    assert backend.stats()["enqueued_jobs"] == 0
    assert execute(dsn, "SELECT COUNT(*) FROM minion_jobs") == [(0,)]
