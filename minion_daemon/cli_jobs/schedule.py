"""``minion-daemon schedule``: Perl's ``minion schedule`` (Minion 12, SPEC §5.3).

In Perl's order: ``-e NAME`` adds or replaces a schedule (``-c`` and ``-t`` required) and
prints its id; ``-P``/``-r``/``-R NAME`` pause, resume or remove one; ``-d`` dispatches the due
schedules now and prints what it enqueued; ``NAME`` shows one schedule; nothing lists them.
Schedules need schema 25; on an older database the command fails with the schema's message.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from minion_daemon.cli_jobs.output import dump_yaml, perl_view, rfc3339, tablify
from minion_daemon.cli_jobs.setup import (
    Action,
    CommandFailed,
    CommandLineError,
    Connector,
    add_job_option,
    add_limit_options,
    job_options,
    json_array,
    page,
    runner,
    show,
)
from minion_daemon.minion import Minion

#: Whom -A -E -p -x apply to, in their help.
_EACH_JOB = "each enqueued job"
#: The options of each job a schedule enqueues.
_JOB_OPTION_NAMES = ("attempts", "expire", "lax", "notes", "priority")


def add_parser(commands: Any, connector: Connector) -> None:
    """Register ``schedule`` on the ``minion-daemon`` subcommands."""
    parser = commands.add_parser(
        "schedule",
        help="manage cron schedules (Perl's `minion schedule`)",
        description="Manage cron schedules as Perl's `minion schedule` does. Here -c is the"
        " cron expression, as in Perl; the config file is --config.",
        allow_abbrev=False,
        # -c is --cron here, as in Perl: it takes -c from the shared --config option.
        conflict_handler="resolve",
    )
    connector.add_options(parser)
    option = parser.add_argument
    add_job_option(parser, "-A", _EACH_JOB, retry=False)
    option("-a", "--args", metavar="JSON", help="JSON array: arguments of each enqueued job")
    option("-c", "--cron", metavar="EXPRESSION", help="cron expression of the new schedule")
    option("-d", "--dispatch", action="store_true", help="enqueue the jobs of due schedules now")
    add_job_option(parser, "-E", _EACH_JOB, retry=False)
    option("-e", "--enqueue", metavar="NAME", help="add or replace the schedule NAME (needs -c"
           " and -t) and print its id")
    option("-n", "--notes", metavar="JSON", help="JSON object: notes of each enqueued job")
    option("-P", "--pause", metavar="NAME", help="pause a schedule")
    add_job_option(parser, "-p", _EACH_JOB, retry=False)
    option("-q", "--queue", metavar="NAME", help="queue of each enqueued job (default default)")
    option("-R", "--remove", metavar="NAME", help="remove a schedule")
    option("-r", "--resume", metavar="NAME", help="resume a paused schedule")
    option("-t", "--task", metavar="TASK", help="task of the new schedule")
    add_job_option(parser, "-x", _EACH_JOB, retry=False)
    add_limit_options(parser, "schedules")
    option("name", nargs="?", metavar="NAME", help="show this schedule")
    parser.set_defaults(run=runner(connector, _prepare))


def _prepare(arguments: argparse.Namespace) -> Action:
    offset, limit = page(arguments)
    if arguments.enqueue is not None:
        return _schedule(arguments)
    for name, change in (
        (arguments.pause, Minion.pause_schedule),
        (arguments.resume, Minion.resume_schedule),
        (arguments.remove, Minion.unschedule),
    ):
        if name is not None:
            return _changer(change, name)
    if arguments.dispatch:
        return lambda minion: _dispatch(minion, arguments.json)
    if arguments.name is not None:
        return lambda minion: _show(minion, arguments.name, arguments.json)
    return lambda minion: _list(minion, offset, limit, arguments.json)


def _schedule(arguments: argparse.Namespace) -> Action:
    if arguments.cron is None:
        raise CommandLineError("Cron expression is required (-c).")
    if arguments.task is None:
        raise CommandLineError("Task is required (-t).")
    args = json_array("-a/--args", arguments.args)
    options = job_options(arguments, _JOB_OPTION_NAMES, arguments.queue)

    def schedule(minion: Minion) -> int:
        name, cron, task = arguments.enqueue, arguments.cron, arguments.task
        print(minion.schedule(name, cron, task, args, **options))
        return 0

    return schedule


def _changer(change: Callable[[Minion, str], bool], name: str) -> Action:
    def act(minion: Minion) -> int:
        if not change(minion, name):
            raise CommandFailed(f"Schedule {name!r} does not exist.")
        return 0

    return act


def _dispatch(minion: Minion, json_wanted: bool) -> int:
    dispatched = minion.dispatch_schedules()
    return show(json_wanted, dispatched, lambda: dump_yaml(dispatched))


def _show(minion: Minion, name: str, json_wanted: bool) -> int:
    found = minion.list_schedules(0, 1, names=[name])["schedules"]
    if not found:
        raise CommandFailed(f"Schedule {name!r} does not exist.")
    return show(json_wanted, found[0], lambda: dump_yaml(perl_view(found[0])))


def _list(minion: Minion, offset: int, limit: int, json_wanted: bool) -> int:
    listed = minion.list_schedules(offset, limit)
    rows = [
        [s["id"], s["name"], s["task"], s["cron"], rfc3339(s["next_run"]), int(s["paused"])]
        for s in listed["schedules"]
    ]
    return show(json_wanted, listed, lambda: tablify(rows))
