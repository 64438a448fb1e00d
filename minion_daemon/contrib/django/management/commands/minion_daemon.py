"""``manage.py minion_daemon COMMAND ...``: minion-daemon's command line (``run``, ``worker``,
``job``...) in a process that has Django set up, so that tasks use the ORM.

The daemon's processes are forks of this one, and Django's connections are per process: each
forked process lets go of those it inherited (they are its parent's sessions) and opens its
own on first use. Django's database is the default one: it is where
:func:`~minion_daemon.contrib.django.connection` enqueues.
"""

from __future__ import annotations

import argparse
import functools
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from minion_daemon import cli
from minion_daemon.backend.connections import disown
from minion_daemon.contrib.django import dsn


class Command(BaseCommand):
    help = (
        "Run a minion-daemon command (run, worker, job, ...) with Django set up. Without"
        " --dsn, $MINION_DAEMON_DSN or postgres.dsn, the database is Django's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            metavar="ALIAS",
            help=f"the Django database the jobs are in (default: {DEFAULT_DB_ALIAS!r}, when it"
            " is PostgreSQL)",
        )
        parser.add_argument(
            "arguments",
            nargs=argparse.REMAINDER,
            metavar="COMMAND ...",
            help="minion-daemon's command and its options (COMMAND --help tells them)",
        )

    def handle(self, *_: Any, arguments: list[str], database: str | None, **__: Any) -> None:
        _refuse_pools()
        _fresh_connections_after_fork()
        code = cli.main(arguments, database=_database(database))
        if code:
            raise SystemExit(code)


def _database(alias: str | None) -> str | None:
    """The DSN of ``alias``; of the default database when none is named and it is PostgreSQL
    (the others, SQLite say, hold no jobs: minion-daemon's own defaults apply)."""
    if alias is None:
        alias = DEFAULT_DB_ALIAS
        if connections[alias].vendor != "postgresql":
            return None
    try:
        return dsn(alias)
    except TypeError as error:
        raise CommandError(str(error)) from error


def _refuse_pools() -> None:
    """Django's connection pool would be inherited by every forked process, without its
    threads and with its sessions, which parent and child would then share."""
    for alias in connections:
        if connections[alias].settings_dict["OPTIONS"].get("pool"):
            raise CommandError(
                f"DATABASES[{alias!r}]['OPTIONS']['pool'] is set: Django's connection pool"
                " cannot cross the daemon's forks; run it with settings that leave the pool off"
            )


@functools.cache  # once per process, however often the command runs in it
def _fresh_connections_after_fork() -> None:
    os.register_at_fork(after_in_child=_let_go_of_inherited_connections)


def _let_go_of_inherited_connections() -> None:
    """In a forked child: point each inherited connection's socket at /dev/null, so that
    closing it here (Django's bookkeeping) ends nothing of the parent's, which goes on."""
    for wrapper in connections.all(initialized_only=True):
        if wrapper.connection is not None:
            disown(wrapper.connection)
            wrapper.close()
