"""The read-only pages. Each reads a bounded amount: a page of a listing (at most
:data:`~minion_daemon.admin.params.MAX_LIMIT` rows) and counts along the paths ``stats`` takes."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Request, Response

from minion_daemon.admin import params, present
from minion_daemon.backend.admin import hourly_history, queue_activity

if TYPE_CHECKING:
    from minion_daemon.admin.app import AdminApp

_JOB_FILTERS = (("state", "states"), ("queue", "queues"), ("task", "tasks"), ("note", "notes"))


def dashboard(app: AdminApp, request: Request) -> Response:
    observation = app.backend.observe(app.query_timeout)
    history = hourly_history(app.backend, app.query_timeout)
    return app.render(
        request,
        "dashboard.html",
        stats=observation["stats"],
        backlog=observation["backlog"],
        recent=observation["recent"],
        oldest_active_age=observation["oldest_active_age"],
        bars=present.chart(history["daily"]),
        history_estimated=history["estimated"],
        schema_version=app.backend.schema_version,
    )


def stats_json(app: AdminApp, request: Request) -> Response:
    """``stats`` as JSON, for the dashboard's live figures (Minion::Admin's ``/stats``)."""
    return Response(json.dumps(app.backend.stats()), content_type="application/json")


def job_filters(query: Any) -> dict[str, Any]:
    """The job list's filters from a query string, as ``list_jobs`` options."""
    options: dict[str, Any] = {"states": params.states(query)}
    for name, option in _JOB_FILTERS[1:]:
        options[option] = params.texts(query, name)
    options["ids"] = params.ids(query)
    return {key: value for key, value in options.items() if value}


def jobs(app: AdminApp, request: Request) -> Response:
    """Newest first; "older" pages go by id (``before``), so a page deep in a million jobs
    costs what the first one does."""
    query = request.args
    size = params.limit(query, 25)
    options = job_filters(query)
    before = params.whole(query, "before", 0)
    if before:
        options["before"] = before
    listing = app.backend.list_jobs(0, size, options)
    kept = [(k, v) for k, v in query.items(multi=True) if k not in ("before", "notice")]
    older = None
    if len(listing["jobs"]) == size:
        older = "/jobs?" + urlencode([*kept, ("before", listing["jobs"][-1]["id"])])
    return app.render(
        request,
        "jobs.html",
        jobs=listing["jobs"],
        total=listing["total"],
        filters={name: query.getlist(name) for name in ("state", "queue", "task", "id", "note")},
        newest="/jobs?" + urlencode(kept) if before else None,
        older=older,
        states=params.JOB_STATES,
    )


def job(app: AdminApp, request: Request, job_id: int) -> Response:
    found = app.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    if not found:
        raise NotFound(f"There is no job {job_id} (removed, or an expired inactive job).")
    info = found[0]
    worker = None
    if info["worker"] is not None:
        workers = app.backend.list_workers(0, 1, {"ids": [info["worker"]]})["workers"]
        worker = workers[0] if workers else None
    return app.render(
        request,
        "job.html",
        job=info,
        worker=worker,
        timings=_timings(info),
    )


def _timings(info: Any) -> list[tuple[str, float | None, str]]:
    """Each moment of a job's life and how long the step before it took."""

    def between(start: float | None, end: float | None) -> str:
        return "" if start is None or end is None else present.span(max(end - start, 0))

    return [
        ("created", info["created"], ""),
        ("delayed until", info["delayed"], between(info["created"], info["delayed"])),
        ("retried", info["retried"], ""),
        ("started", info["started"], between(info["delayed"], info["started"])),
        ("finished", info["finished"], between(info["started"], info["finished"])),
    ]


def workers(app: AdminApp, request: Request) -> Response:
    query = request.args
    size = params.limit(query, 50)
    offset = params.whole(query, "offset", 0, 1_000_000)
    options = {"ids": params.ids(query)} if params.ids(query) else {}
    listing = app.backend.list_workers(offset, size, options)
    return app.render(
        request,
        "workers.html",
        workers=listing["workers"],
        total=listing["total"],
        pages=_pages("/workers", query, offset, size, listing["total"]),
    )


def locks(app: AdminApp, request: Request) -> Response:
    query = request.args
    size = params.limit(query, 50)
    offset = params.whole(query, "offset", 0, 1_000_000)
    names = params.texts(query, "name")
    listing = app.backend.list_locks(offset, size, {"names": names} if names else {})
    return app.render(
        request,
        "locks.html",
        locks=listing["locks"],
        total=listing["total"],
        names=names,
        pages=_pages("/locks", query, offset, size, listing["total"]),
    )


def schedules(app: AdminApp, request: Request) -> Response:
    query = request.args
    if not app.backend.has_schedules:
        return app.render(request, "schedules.html", supported=False, schedules=[], total=0)
    size = params.limit(query, 50)
    offset = params.whole(query, "offset", 0, 1_000_000)
    names = params.texts(query, "name")
    listing = app.backend.list_schedules(offset, size, {"names": names} if names else {})
    return app.render(
        request,
        "schedules.html",
        supported=True,
        schedules=listing["schedules"],
        total=listing["total"],
        names=names,
        pages=_pages("/schedules", query, offset, size, listing["total"]),
    )


def queues(app: AdminApp, request: Request) -> Response:
    activity = queue_activity(app.backend, app.query_timeout)
    rows: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"backlog": 0, "oldest_age": 0.0, "running": 0, "finished_1h": 0, "failed_1h": 0}
    )
    for group in activity["backlog"]:
        row = rows[group["queue"]]
        row["backlog"] += group["jobs"]
        row["oldest_age"] = max(row["oldest_age"], group["oldest_age"])
    for queue in activity["queues"]:
        rows[queue["queue"]].update(
            running=queue["running"],
            finished_1h=queue["finished_1h"],
            failed_1h=queue["failed_1h"],
        )
    return app.render(
        request,
        "queues.html",
        queues=sorted(rows.items()),
        complete=activity["complete"],
    )


def _pages(path: str, query: Any, offset: int, size: int, total: int) -> dict[str, str | None]:
    kept = [(k, v) for k, v in query.items(multi=True) if k not in ("offset", "notice")]
    previous = max(offset - size, 0)
    return {
        "previous": f"{path}?{urlencode([*kept, ('offset', previous)])}" if offset else None,
        "next": f"{path}?{urlencode([*kept, ('offset', offset + size)])}"
        if offset + size < total
        else None,
    }
