"""Minion 12's cron schedules (schema 25), as operations of the PostgreSQL backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from minion_daemon.backend import sql
from minion_daemon.backend.connections import Connection
from minion_daemon.backend.executor import PgExecutor
from minion_daemon.backend.params import enqueue_params
from minion_daemon.cron import next_cron_time, parse_cron
from minion_daemon.errors import CronError
from minion_daemon.model import DispatchedSchedule, ScheduleInfo, ScheduleList
from minion_daemon.options import (
    JobOptions,
    Options,
    check_args,
    check_page,
    check_text,
    parse_filter,
    parse_schedule_options,
)

_SCHEDULE_FILTERS = frozenset(("before", "ids", "names"))


class ScheduleOperations(PgExecutor):
    """Create, pause, list and dispatch schedules; every method needs schema 25."""

    def schedule(
        self,
        name: str,
        cron: str,
        task: str,
        args: Sequence[Any] | None = None,
        options: Options = None,
    ) -> int:
        """Create or update the schedule ``name``; returns its id (kept when it exists).

        Options: ``attempts``, ``expire``, ``lax``, ``notes``, ``priority``, ``queue``. An
        invalid cron expression raises :class:`CronError` before anything is written.
        """
        check_text("schedule: name", name)
        check_text("schedule: task", task)
        parsed = parse_cron(check_text("schedule: cron", cron))
        opts = parse_schedule_options("schedule", options)
        params = enqueue_params(task, check_args("schedule: args", args), opts)
        self.require_schedules("schedule")
        now = float(self.scalar("schedule", sql.DATABASE_NOW))
        params |= {"name": name, "cron": cron, "next_run": next_cron_time(parsed, now)}
        return int(self.scalar("schedule", sql.SCHEDULE, params))

    def unschedule(self, name: str) -> bool:
        """Remove the schedule ``name``; false if there is none."""
        return self._change_schedule("unschedule", sql.UNSCHEDULE, name, {})

    def pause_schedule(self, name: str) -> bool:
        """Stop dispatching the schedule ``name``; false if there is none."""
        paused = {"paused": True}
        return self._change_schedule("pause_schedule", sql.SET_SCHEDULE_PAUSED, name, paused)

    def resume_schedule(self, name: str) -> bool:
        """Dispatch the schedule ``name`` again; false if there is none."""
        paused = {"paused": False}
        return self._change_schedule("resume_schedule", sql.SET_SCHEDULE_PAUSED, name, paused)

    def _change_schedule(self, op: str, query: Any, name: str, params: dict[str, Any]) -> bool:
        params = params | {"name": check_text(f"{op}: name", name, empty=True)}
        self.require_schedules(op)
        return self.rowcount(op, query, params) > 0

    def list_schedules(self, offset: int, limit: int, options: Options = None) -> ScheduleList:
        """A page of schedules, newest first. Filters: ``before``, ``ids``, ``names``."""
        start, size = check_page("list_schedules", offset, limit)
        params = parse_filter("list_schedules", options, _SCHEDULE_FILTERS)
        params |= {"offset": start, "limit": size}
        self.require_schedules("list_schedules")
        queries = (sql.LIST_SCHEDULES, sql.COUNT_SCHEDULES)
        schedules, total = self.page("list_schedules", queries, params)
        return {"schedules": cast("list[ScheduleInfo]", schedules), "total": total}

    def dispatch_schedules(self) -> list[DispatchedSchedule]:
        """Enqueue one job for every due, unpaused schedule, all in one transaction.

        Returns at once with ``[]`` while another dispatcher (Perl's included) holds the
        shared advisory lock. Missed runs are not caught up: the next run is computed from
        the later of the scheduled time and now.
        """
        self.require_schedules("dispatch_schedules")
        with self.connection("dispatch_schedules") as conn, conn.transaction():
            lock = conn.execute(sql.TRY_DISPATCH_LOCK).fetchone()
            if lock is None or not lock["locked"]:
                return []
            due = conn.execute(sql.DUE_SCHEDULES).fetchall()
            return [self._dispatch(conn, schedule) for schedule in due]

    @staticmethod
    def _dispatch(conn: Connection, schedule: dict[str, Any]) -> DispatchedSchedule:
        options = JobOptions(
            attempts=schedule["attempts"],
            expire=schedule["expire"],
            lax=schedule["lax"],
            notes=schedule["notes"],
            priority=schedule["priority"],
            queue=schedule["queue"],
        )
        params = enqueue_params(schedule["task"], schedule["args"], options)
        job_id = int(PgExecutor.scalar_on(conn, sql.ENQUEUE, params))
        try:
            after = max(schedule["next_run"], schedule["now"])
            next_run = next_cron_time(schedule["cron"], after)
        except CronError as error:
            raise CronError(f"schedule {schedule['name']!r}: {error}") from error
        dispatched = {"id": schedule["id"], "job": job_id, "next_run": next_run}
        conn.execute(sql.SCHEDULE_DISPATCHED, dispatched)
        return {"id": schedule["id"], "name": schedule["name"], "job": job_id}
