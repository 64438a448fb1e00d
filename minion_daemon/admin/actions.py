"""The state-changing routes; the app lets a request in only with a session and its CSRF token.

Each answers with a 303 back to the page the form was on, and a notice code (never text from
the request) that the page shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from werkzeug.exceptions import BadRequest
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from minion_daemon.admin import params
from minion_daemon.commands import KILL_SIGNALS
from minion_daemon.options import INT_MAX

if TYPE_CHECKING:
    from minion_daemon.admin.app import AdminApp

#: Minion::Admin's job actions, and the signal each ``sig_`` one sends.
JOB_ACTIONS: Final = ("retry", "remove", "stop", "sig_int", "sig_term", "sig_usr1", "sig_usr2")
WORKER_COMMANDS: Final = ("jobs", "spare")
#: Stops a Python worker as TERM does (Minion's ``stop`` names a job); Perl's ignore it.
WORKER_SHUTDOWN: Final = "shutdown"
SCHEDULE_ACTIONS: Final = ("pause", "resume", "run")


def _choice(form: Any, name: str, choices: tuple[str, ...]) -> str:
    value = form.get(name, "")
    if value not in choices:
        raise BadRequest(f"{name}: expected one of {', '.join(choices)}")
    return str(value)


def manage_jobs(app: AdminApp, request: Request) -> Response:
    form = request.form
    action = _choice(form, "do", JOB_ACTIONS)
    ids = params.ids(form)
    if not ids:
        raise BadRequest("id: select at least one job")
    if action == "retry":
        notice = "retried" if _retry(app, ids, _retry_options(form)) else "retry-failed"
    elif action == "remove":
        removed = [app.backend.remove_job(job_id) for job_id in ids]
        notice = "removed" if all(removed) else "remove-failed"
    elif action == "stop":
        for job_id in ids:
            app.backend.broadcast("stop", [job_id])
        notice = "stopping"
    else:
        signal = action.removeprefix("sig_").upper()
        assert signal in KILL_SIGNALS
        for job_id in ids:
            app.backend.broadcast("kill", [signal, job_id])
        notice = "signalled"
    back = f"/jobs/{ids[0]}" if form.get("back") == "job" and len(ids) == 1 else "/jobs"
    query = [("id", job_id) for job_id in ids] if back == "/jobs" else []
    return redirect(f"{back}?{urlencode([*query, ('notice', notice)])}", code=303)


def _retry_options(form: Any) -> dict[str, Any]:
    """Retry with a new priority, queue or delay; an empty field keeps the job's own."""
    options: dict[str, Any] = {}
    priority = params.integer(form, "priority", -INT_MAX, INT_MAX)
    if priority is not None:
        options["priority"] = priority
    delay = params.integer(form, "delay", 0, INT_MAX)
    if delay is not None:
        options["delay"] = delay
    queue = params.texts(form, "queue")
    if queue:
        options["queue"] = queue[0]
    return options


def _retry(app: AdminApp, ids: list[int], options: dict[str, Any]) -> bool:
    done = True
    for job_id in ids:
        job = app.minion.job(job_id)
        done = job is not None and job.retry(**options) and done
    return done


def broadcast(app: AdminApp, request: Request) -> Response:
    """``jobs N``, ``spare N`` or ``shutdown`` to one worker (``worker``) or all."""
    form = request.form
    command = _choice(form, "command", (*WORKER_COMMANDS, WORKER_SHUTDOWN))
    arguments: list[int] = []
    if command != WORKER_SHUTDOWN:
        count = params.integer(form, "count", 0, 10_000)
        if count is None:
            raise BadRequest("count: expected a whole number from 0 to 10000")
        arguments.append(count)
    workers = params.ids(form, "worker")
    sent = app.backend.broadcast(command, arguments, workers or None)
    return redirect(f"/workers?notice={'broadcast' if sent else 'broadcast-failed'}", code=303)


def unlock(app: AdminApp, request: Request) -> Response:
    names = params.texts(request.form, "name")
    if not names:
        raise BadRequest("name: select at least one lock")
    for name in names:
        app.backend.unlock(name)
    return redirect("/locks?notice=unlocked", code=303)


def manage_schedules(app: AdminApp, request: Request) -> Response:
    form = request.form
    action = _choice(form, "do", SCHEDULE_ACTIONS)
    names = params.texts(form, "name")
    if len(names) != 1 or not app.backend.has_schedules:
        raise BadRequest("name: one schedule, on a database at schema 25")
    name = names[0]
    if action == "pause":
        done, notice = app.backend.pause_schedule(name), "paused"
    elif action == "resume":
        done, notice = app.backend.resume_schedule(name), "resumed"
    else:
        done, notice = _run_now(app, name), "ran"
    return redirect(f"/schedules?notice={notice if done else 'schedule-missing'}", code=303)


def _run_now(app: AdminApp, name: str) -> bool:
    """Enqueue the schedule's job now, as a dispatch would, leaving its next run as it is."""
    found = app.backend.list_schedules(0, 1, {"names": [name]})["schedules"]
    if not found:
        return False
    schedule = found[0]
    options: dict[str, Any] = {
        "attempts": schedule["attempts"],
        "lax": schedule["lax"],
        "notes": schedule["notes"],
        "priority": schedule["priority"],
        "queue": schedule["queue"],
    }
    if schedule["expire"] is not None:
        options["expire"] = schedule["expire"]
    app.minion.enqueue(schedule["task"], schedule["args"], **options)
    return True
