"""``minion-daemon job``: Perl's ``minion job``, with the same options, precedence and output.

The first of these that is given decides what the command does, as in Perl: ``-b`` broadcast,
``-e`` enqueue, ``-s`` stats, ``-H`` history, ``-T`` tasks, ``--remove-failed``,
``--retry-failed``, ``-U`` unlock, ``-L`` locks, ``-w`` workers; then, without a job id, the
job list; with one, ``--remove``, ``-R``, ``-f`` or the job's YAML.

Deliberate differences from Minion 10.25: ``-R`` leaves ``lax`` alone unless ``-x`` is given
(Perl resets it, SPEC §5.1); a second job or worker id is an error instead of being ignored;
``-x`` takes 1/0, true/false, yes/no, on/off and refuses other words (Perl reads ``-x false``
as true); ``-L`` prints ``id  name  expires`` as later Minions do (10.25 omits the id); ``-T``
lists the entry-point tasks sorted, with the Python class (``minion_daemon.job.Job`` for a
function, as Perl prints ``Minion::Job`` for a closure). ``-e`` warns on stderr, after the id,
when no live worker offers the task (see ``TaskOffers``); the job is enqueued all the same.
Beyond Perl: ``-u KEY`` (and ``--unique-for SECONDS``) enqueues a unique job, printing the id
of the job that holds the key when one does; ``--cancel ID``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minion_daemon.cli_jobs.output import dump_yaml, numeric, perl_view, rfc3339, tablify
from minion_daemon.cli_jobs.setup import (
    Action,
    CommandFailed,
    CommandLineError,
    Connector,
    add_job_option,
    add_limit_options,
    integer,
    integers,
    job_options,
    json_array,
    json_object,
    json_value,
    page,
    present,
    runner,
    show,
)
from minion_daemon.job import Job
from minion_daemon.minion import ForegroundError, Minion
from minion_daemon.tasks.discovery import load_into

#: Whom -A -E -p -x apply to, in their help.
_NEW_JOB = "a new job"
#: The options of a new job or a retry (-q aside: it also filters the job list).
_JOB_OPTION_NAMES = ("attempts", "delay", "expire", "lax", "parents", "priority")


def add_parser(commands: Any, connector: Connector) -> None:
    """Register ``job`` on the ``minion-daemon`` subcommands."""
    parser = commands.add_parser(
        "job",
        help="manage jobs, workers and locks (Perl's `minion job`)",
        description="Manage the queue as Perl's `minion job` does: enqueue, list, show, retry,"
        " remove or perform jobs; list workers and locks; show statistics and history.",
        allow_abbrev=False,
    )
    option = parser.add_argument
    add_job_option(parser, "-A", _NEW_JOB, retry=True)
    option("-a", "--args", metavar="JSON", help="JSON array: arguments of a new job or of -b")
    option("-b", "--broadcast", metavar="COMMAND", help="send a remote control command to the"
           " workers IDS (default: all)")
    option("--cancel", metavar="ID", help="fail job ID with \"Job cancelled\", without retry;"
           " an active job's process is stopped by its worker (beyond Perl)")
    option("-d", "--delay", metavar="SECONDS", help="delay a new job or a retry")
    add_job_option(parser, "-E", _NEW_JOB, retry=True)
    option("-e", "--enqueue", metavar="TASK", help="enqueue a new job and print its id")
    option("-f", "--foreground", action="store_true", help="retry job ID in the"
           " minion_foreground queue and perform it here and now (for debugging)")
    option("-H", "--history", action="store_true", help="show the queue history")
    option("-L", "--locks", action="store_true", help="list active locks (named IDS if given)")
    option("-n", "--notes", metavar="JSON", help="JSON object: notes of a new job;"
           " JSON array of keys: list only jobs with one of these notes")
    option("-P", "--parent", action="append", metavar="ID", help="a job the new job or retry"
           " depends on (repeatable)")
    add_job_option(parser, "-p", _NEW_JOB, retry=True)
    option("-q", "--queue", action="append", metavar="NAME", help="queue of a new job or retry"
           " (the last one given); list only jobs in these queues (repeatable)")
    option("-R", "--retry", action="store_true", help="retry job ID with -A -d -E -P -p -q -x")
    option("--retry-failed", action="store_true", help="retry every failed job")
    option("--remove", action="store_true", help="remove job ID")
    option("--remove-failed", action="store_true", help="remove every failed job")
    option("-S", "--state", action="append", metavar="STATE", help="list only jobs in these"
           " states (repeatable)")
    option("-s", "--stats", action="store_true", help="show queue statistics")
    option("-T", "--tasks", action="store_true", help="list the tasks installed as"
           " minion_daemon.tasks entry points")
    option("-t", "--task", action="append", metavar="TASK", help="list only jobs of these tasks"
           " (repeatable)")
    option("-U", "--unlock", metavar="NAME", help="release one lock of this name")
    option("-u", "--unique", metavar="KEY", help="enqueue only if no inactive or active job"
           " holds KEY, else print that job's id (beyond Perl)")
    option("--unique-for", metavar="SECONDS", help="with -u: a job created within SECONDS"
           " holds KEY too, whatever its state")
    option("-w", "--workers", action="store_true", help="list workers, or show worker ID")
    add_job_option(parser, "-x", _NEW_JOB, retry=True)
    add_limit_options(parser, "jobs, workers or locks")
    option("ids", nargs="*", metavar="ID", help="a job id; worker ids with -b and -w,"
           " lock names with -L")
    connector.add_options(parser)
    parser.set_defaults(run=runner(connector, _prepare))


@dataclass(frozen=True, slots=True)
class _Values:
    """The option values shared by several modes, checked."""

    json: bool
    args: list[Any] | None
    notes: Any
    job: dict[str, Any]
    offset: int
    limit: int

    @classmethod
    def parse(cls, arguments: argparse.Namespace) -> _Values:
        queue = arguments.queue[-1] if arguments.queue else None
        offset, limit = page(arguments)
        job = job_options(arguments, _JOB_OPTION_NAMES, queue)
        args = json_array("-a/--args", arguments.args)
        notes = json_value("-n/--notes", arguments.notes)
        return cls(arguments.json, args, notes, job, offset, limit)


def _prepare(arguments: argparse.Namespace) -> Action:  # noqa: PLR0911 - Perl's dispatch
    values = _Values.parse(arguments)
    ids: list[str] = arguments.ids
    if arguments.broadcast is not None:
        workers = integers("worker id", ids) or None
        return lambda minion: _broadcast(minion, arguments.broadcast, values.args, workers)
    if arguments.cancel is not None:
        cancelled = _integer_id("--cancel", arguments.cancel)
        return lambda minion: _cancel(minion, cancelled)
    if arguments.enqueue is not None:
        return _enqueue(arguments, values)
    if arguments.stats:
        return lambda minion: _stats(minion, values.json)
    if arguments.history:
        return lambda minion: _history(minion, values.json)
    if arguments.tasks:
        return lambda minion: _tasks(minion, values.json)
    if arguments.remove_failed or arguments.retry_failed:
        change: Callable[[Job], bool] = Job.remove if arguments.remove_failed else Job.retry
        return lambda minion: _each_failed(minion, change)
    if arguments.unlock is not None:
        return lambda minion: _unlock(minion, arguments.unlock)
    if arguments.locks:
        return lambda minion: _locks(minion, values, ids)
    if arguments.workers:
        worker = _one_id("worker", ids)
        return lambda minion: _workers(minion, values, worker)
    job_id = _one_id("job", ids)
    if job_id is None:
        return _list_jobs(arguments, values)
    return _one_job(arguments, values, job_id)


def _one_id(what: str, ids: list[str]) -> int | None:
    if len(ids) > 1:
        raise CommandLineError(f"one {what} id at a time, got {len(ids)}: {' '.join(ids)}")
    return integer(f"{what} id", ids[0]) if ids else None


def _integer_id(option: str, value: str) -> int:
    checked = integer(option, value)
    assert checked is not None, "a given option has a value"
    return checked


def _cancel(minion: Minion, job_id: int) -> int:
    if not minion.cancel(job_id):
        raise CommandFailed(f"job {job_id} has ended already (finished or failed): not cancelled")
    return 0


def _broadcast(
    minion: Minion, command: str, args: list[Any] | None, workers: list[int] | None
) -> int:
    # Silent, as in Perl, even when no worker is registered to receive it.
    minion.broadcast(command, args, workers)
    return 0


def _enqueue(arguments: argparse.Namespace, values: _Values) -> Action:
    task: str = arguments.enqueue
    notes = json_object("-n/--notes", values.notes)
    unique_for = integer("--unique-for", arguments.unique_for)
    if unique_for is not None and arguments.unique is None:
        raise CommandLineError("--unique-for needs -u/--unique KEY, the key it holds")
    options = values.job | present(notes=notes, unique=arguments.unique, unique_for=unique_for)

    def enqueue(minion: Minion) -> int:
        print(minion.enqueue(task, values.args, **options))
        if not minion.backend.live_workers().may_run(task):
            print(
                f"minion-daemon: warning: no live worker offers task {task}; the job waits"
                " until a worker with that task starts (`minion-daemon job -w` lists workers)",
                file=sys.stderr,
            )
        return 0

    return enqueue


def _stats(minion: Minion, json_wanted: bool) -> int:
    stats = minion.stats()
    return show(json_wanted, stats, lambda: dump_yaml(stats | {"uptime": numeric(stats["uptime"])}))


def _history(minion: Minion, json_wanted: bool) -> int:
    history = minion.history()
    daily = [point | {"epoch": numeric(point["epoch"])} for point in history["daily"]]
    return show(json_wanted, history, lambda: dump_yaml({"daily": daily}))


def _tasks(minion: Minion, json_wanted: bool) -> int:
    load_into(minion.tasks)
    tasks = []
    for name in sorted(minion.tasks):
        spec = minion.tasks.get(name)
        assert spec is not None, "listed just now"
        job_class = minion.class_for_task(name)
        tasks.append({
            "name": name,
            "class": f"{job_class.__module__}.{job_class.__qualname__}",
            "source": spec.source,
            "mode": spec.mode,
            "timeout": spec.timeout,
        })
    rows = [[task["name"], task["class"]] for task in tasks]
    return show(json_wanted, {"tasks": tasks}, lambda: tablify(rows))


def _each_failed(minion: Minion, act: Callable[[Job], bool]) -> int:
    for info in minion.jobs(states=["failed"]):
        job = minion.job(info["id"])
        if job is not None:
            act(job)
    return 0


def _unlock(minion: Minion, name: str) -> int:
    minion.unlock(name)  # silent, as in Perl, whether or not a lock was released
    return 0


def _locks(minion: Minion, values: _Values, names: list[str]) -> int:
    filters = {"names": names} if names else None
    listed = minion.backend.list_locks(values.offset, values.limit, filters)
    rows = [[lock["id"], lock["name"], rfc3339(lock["expires"])] for lock in listed["locks"]]
    return show(values.json, listed, lambda: tablify(rows))


def _workers(minion: Minion, values: _Values, worker_id: int | None) -> int:
    if worker_id is None:
        listed = minion.backend.list_workers(values.offset, values.limit)
        rows = [[w["id"], f"{w['host']}:{w['pid']}"] for w in listed["workers"]]
        return show(values.json, listed, lambda: tablify(rows))
    found = minion.backend.list_workers(0, 1, {"ids": [worker_id]})["workers"]
    if not found:
        raise CommandFailed(f"Worker {worker_id} does not exist.")
    return show(values.json, found[0], lambda: dump_yaml(perl_view(found[0])))


def _list_jobs(arguments: argparse.Namespace, values: _Values) -> Action:
    keys = values.notes
    if keys is not None and not isinstance(keys, list):
        raise CommandLineError(
            "-n/--notes lists jobs by note keys: pass a JSON array, such as '[\"key\"]'"
        )
    filters = present(
        queues=arguments.queue, states=arguments.state, tasks=arguments.task, notes=keys
    )

    def list_jobs(minion: Minion) -> int:
        listed = minion.backend.list_jobs(values.offset, values.limit, filters)
        rows = [[j["id"], j["state"], j["queue"], j["task"]] for j in listed["jobs"]]
        return show(values.json, listed, lambda: tablify(rows))

    return list_jobs


def _one_job(arguments: argparse.Namespace, values: _Values, job_id: int) -> Action:
    def act(minion: Minion) -> int:
        job = minion.job(job_id)
        if job is None:
            raise CommandFailed(f"Job {job_id} does not exist.")
        if arguments.remove:
            if not job.remove():
                raise CommandFailed(f"Job {job_id} is active.")
            return 0
        if arguments.retry:
            if not job.retry(**values.job):
                raise CommandFailed(f"Job {job_id} changed while it was retried; try again.")
            return 0
        if arguments.foreground:
            return _foreground(minion, job)
        info = job.info
        if info is None:
            raise CommandFailed(f"Job {job_id} does not exist.")
        return show(values.json, info, lambda: dump_yaml(perl_view(info)))

    return act


def _foreground(minion: Minion, job: Job) -> int:
    """Perform the job here with its task's entry point; the task's error is printed whole."""
    load_into(minion.tasks, [job.task])
    try:
        performed = minion.foreground(job.id)
    except ForegroundError as error:
        print(f"minion-daemon: job {job.id} failed: {error}", file=sys.stderr)
        return 1
    if not performed:
        raise CommandFailed(f"Job {job.id} is not ready.")
    return 0
