"""What the ``job`` and ``schedule`` commands share: the connection, option values, errors.

Exit codes as for every command: 2 for a mistake in the command line (a bad option value,
JSON that does not parse, an option the API refuses), 1 when the queue says no (``Job does
not exist.``), with one ``minion-daemon: ...`` line on stderr either way.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from minion_daemon import logs
from minion_daemon.backend import PgBackend
from minion_daemon.cli_jobs.output import dump_json
from minion_daemon.config import Config
from minion_daemon.errors import MinionError
from minion_daemon.minion import Minion

EXIT_USAGE: Final = 2

_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_TRUE: Final = frozenset(("1", "true", "yes", "on"))
_FALSE: Final = frozenset(("0", "false", "no", "off", ""))


class CommandLineError(Exception):
    """A mistake in the command line; exit code 2."""


class CommandFailed(MinionError):
    """The queue cannot do what was asked (no such job, job active); exit code 1."""


@dataclass(frozen=True, slots=True)
class Connector:
    """The shared connection options of ``cli.py``, and a Minion built from them."""

    add_options: Callable[[argparse.ArgumentParser], None]
    config: Callable[[argparse.Namespace], Config]
    dsn: Callable[[argparse.Namespace, Config], str]

    def minion(self, arguments: argparse.Namespace) -> Minion:
        """One plain connection to the database as it is: reading or filling a queue never
        migrates it (a Perl fleet sharing it may know no newer schema).

        ``job -f`` runs a task in this process: its logging is then set up as a worker's, so
        the task's log lines show. The other commands print their output only.
        """
        config = self.config(arguments)
        if getattr(arguments, "foreground", False):
            logs.configure(config.logging.format, config.logging.level)
        backend = PgBackend.from_settings(
            config.postgres, self.dsn(arguments, config), pooled=False, auto_migrate="off"
        )
        return Minion(backend)


#: What a subcommand does once its arguments are checked; returns the exit code.
Action = Callable[[Minion], int]
#: Checks a subcommand's arguments (raising :class:`CommandLineError`) and returns its action.
Prepare = Callable[[argparse.Namespace], Action]


def runner(connector: Connector, prepare: Prepare) -> Callable[[argparse.Namespace], int]:
    """The ``run`` of a subcommand: check the arguments, connect, act; mistakes exit 2.

    Arguments are checked before connecting, so a typo never waits for the database. The API
    raises ``ValueError``/``TypeError`` naming the option for values it refuses (``attempts``
    0, an unknown state, a bad cron expression): those are usage errors too.
    """

    def run(arguments: argparse.Namespace) -> int:
        try:
            action = prepare(arguments)
            minion = connector.minion(arguments)
            try:
                return action(minion)
            finally:
                minion.close()
        except (CommandLineError, ValueError, TypeError) as error:
            print(f"minion-daemon: {error}", file=sys.stderr)
            return EXIT_USAGE

    return run


def integer(option: str, value: str | None) -> int | None:
    """An integer option (Getopt's ``=i``); ``None`` when it was not given."""
    return None if value is None else _integer(option, value)


def _integer(option: str, value: str) -> int:
    if not _INTEGER.fullmatch(value):
        raise CommandLineError(f"{option} expects an integer, got {value!r}")
    return int(value)


def integers(option: str, values: list[str] | None) -> list[int] | None:
    return None if values is None else [_integer(option, value) for value in values]


def flag(option: str, value: str | None) -> bool | None:
    """``-x``: 1/true/yes/on or 0/false/no/off (Perl would read any non-empty string but
    ``0`` as true, so ``-x false`` meant true; a typo here is an error instead)."""
    if value is None:
        return None
    word = value.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise CommandLineError(f"{option} expects 1 or 0 (true/false, yes/no), got {value!r}")


def json_value(option: str, value: str | None) -> Any:
    """A JSON option (``-a``, ``-n``); ``None`` when it was not given."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise CommandLineError(f"{option} is not valid JSON: {error}") from None
    except RecursionError:
        raise CommandLineError(f"{option} is nested too deeply to read; flatten it") from None


def json_array(option: str, value: str | None) -> list[Any] | None:
    decoded = json_value(option, value)
    if decoded is not None and not isinstance(decoded, list):
        raise CommandLineError(f"{option} expects a JSON array, such as '[1, \"two\"]'")
    return decoded


def json_object(option: str, decoded: Any) -> dict[str, Any] | None:
    if decoded is not None and not isinstance(decoded, dict):
        raise CommandLineError(f"{option} expects a JSON object, such as '{{\"key\": 1}}'")
    return decoded


def present(**options: Any) -> dict[str, Any]:
    """The options that were given: Perl passes undefined ones, the API wants them absent."""
    return {key: value for key, value in options.items() if value is not None}


#: The options of a job to enqueue that ``job`` and ``schedule`` share: long name, metavar and
#: help, where ``{job}`` names the job(s) they apply to and ``{or_retry}`` / ``{or_a_retry}``
#: what ``job -R`` adds.
_JOB_OPTIONS: Final = {
    "-A": ("--attempts", "N", "attempts of {job} (default 1){or_a_retry}"),
    "-E": ("--expire", "SECONDS", "{job}{or_retry} expires after this"),
    "-p": ("--priority", "N", "priority of {job} (default 0){or_a_retry}"),
    "-x": (
        "--lax",
        "BOOL",
        "{job}{or_retry} may run once its parents ended, failed ones included (1 or 0)",
    ),
}


def add_job_option(parser: argparse.ArgumentParser, name: str, job: str, retry: bool) -> None:
    """Declare ``name``, one of ``-A -E -p -x``, for ``job`` ("a new job"); ``retry``: the
    option also applies to a retry. One at a time, so each command keeps its option order."""
    long, metavar, text = _JOB_OPTIONS[name]
    retried = {"or_retry": " or retry", "or_a_retry": " or a retry"} if retry else {}
    words = {"or_retry": "", "or_a_retry": ""} | retried
    parser.add_argument(name, long, metavar=metavar, help=text.format(job=job, **words))


#: How ``job_options`` reads each option of a job: its ``argparse`` destination and check.
_JOB_VALUES: Final[dict[str, tuple[str, Callable[[Any], Any]]]] = {
    "attempts": ("attempts", lambda value: integer("-A/--attempts", value)),
    "delay": ("delay", lambda value: integer("-d/--delay", value)),
    "expire": ("expire", lambda value: integer("-E/--expire", value)),
    "lax": ("lax", lambda value: flag("-x/--lax", value)),
    "notes": ("notes", lambda value: json_object("-n/--notes", json_value("-n/--notes", value))),
    "parents": ("parent", lambda value: integers("-P/--parent", value)),
    "priority": ("priority", lambda value: integer("-p/--priority", value)),
}


def job_options(
    arguments: argparse.Namespace, names: tuple[str, ...], queue: str | None
) -> dict[str, Any]:
    """The options of a job given on the command line: the checked values of ``names`` (in
    that order: the first bad one is the one reported), then ``queue``."""
    checked = {}
    for name in names:
        destination, check = _JOB_VALUES[name]
        checked[name] = check(getattr(arguments, destination))
    return present(**checked, queue=queue)


def add_limit_options(parser: argparse.ArgumentParser, what: str) -> None:
    option = parser.add_argument
    option("-l", "--limit", default="100", metavar="N", help=f"{what} to list, default 100")
    option("-o", "--offset", default="0", metavar="N", help=f"{what} to skip, default 0")
    option("--json", action="store_true", help="print the API's data as JSON")


def page(arguments: argparse.Namespace) -> tuple[int, int]:
    """``(offset, limit)`` of a listing."""
    return _integer("-o/--offset", arguments.offset), _integer("-l/--limit", arguments.limit)


def show(json_wanted: bool, data: object, text: Callable[[], str]) -> int:
    """Print ``data`` as JSON with ``--json``, else what ``text`` renders; exit code 0."""
    sys.stdout.write(dump_json(data) if json_wanted else text())
    return 0

