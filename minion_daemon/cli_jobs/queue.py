"""``minion-daemon queue``: pause, resume and list queues for the whole fleet (beyond Perl).

``--pause NAME`` and ``--resume NAME`` change one queue; without either, each queue with
runnable, running or paused jobs is listed: name, backlog (runnable inactive jobs), running
(active jobs) and ``paused``. Only Python workers honour a pause: when Perl workers serving
the queue are registered, ``--pause`` says on stderr that they keep claiming from it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from minion_daemon.cli_jobs.output import tablify
from minion_daemon.cli_jobs.setup import Action, CommandFailed, Connector, runner, show
from minion_daemon.minion import Minion


def add_parser(commands: Any, connector: Connector) -> None:
    """Register ``queue`` on the ``minion-daemon`` subcommands."""
    parser = commands.add_parser(
        "queue",
        help="pause, resume or list queues for every Python worker",
        description="Pause or resume a queue for every Python worker of the fleet (within a"
        " second; running jobs finish), or list each queue's backlog, running jobs and"
        " paused state. Perl workers do not know pauses and keep claiming.",
        allow_abbrev=False,
    )
    option = parser.add_argument
    option("--pause", metavar="NAME", help="stop Python workers claiming from queue NAME")
    option("--resume", metavar="NAME", help="let Python workers claim from queue NAME again")
    option("--json", action="store_true", help="print the API's data as JSON")
    connector.add_options(parser)
    parser.set_defaults(run=runner(connector, _prepare))


def _prepare(arguments: argparse.Namespace) -> Action:
    if arguments.pause is not None:
        return lambda minion: _pause(minion, arguments.pause)
    if arguments.resume is not None:
        return lambda minion: _resume(minion, arguments.resume)
    return lambda minion: _list(minion, arguments.json)


def _pause(minion: Minion, name: str) -> int:
    if not minion.pause_queue(name):
        raise CommandFailed(f"queue {name!r} is paused already")
    perl = minion.backend.perl_workers_of_queue(name)
    if perl:
        print(
            f"minion-daemon: warning: {perl} Perl worker(s) serving queue {name!r} keep"
            " claiming its jobs: a pause holds only Python workers",
            file=sys.stderr,
        )
    return 0


def _resume(minion: Minion, name: str) -> int:
    if not minion.resume_queue(name):
        raise CommandFailed(f"queue {name!r} is not paused")
    return 0


def _list(minion: Minion, json_wanted: bool) -> int:
    queues = minion.list_queues()
    rows = [
        [q["queue"], q["backlog"], q["running"], "paused" if q["paused"] else ""] for q in queues
    ]
    return show(json_wanted, {"queues": queues}, lambda: tablify(rows))
