"""The ``minion-daemon`` command line: parses arguments and calls the public API, nothing else.

Exit codes: 0 success, 1 a runtime error (the database said no or could not be reached),
2 a usage or configuration error, 3 (``run``) a crash loop: worker processes that cannot boot.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from minion_daemon import __version__, logs
from minion_daemon.admin import command as admin_command
from minion_daemon.backend import PgBackend
from minion_daemon.cli_jobs import add_commands as add_job_commands
from minion_daemon.config import (
    DSN_ENVIRONMENT_VARIABLE,
    RESTART_KEYS,
    Config,
    ConfigError,
    describe,
    load_config,
)
from minion_daemon.embedded_pg import (
    STATE_DIR_ENVIRONMENT_VARIABLE,
    EmbeddedPostgres,
    default_state_dir,
)
from minion_daemon.errors import MinionError
from minion_daemon.minion import Minion
from minion_daemon.supervisor import Supervisor
from minion_daemon.tasks import TaskConflictError, TaskLoadError
from minion_daemon.tasks.discovery import load_into

DEFAULT_CONFIG: Final = Path("/etc/minion-daemon/config.yaml")

EXIT_RUNTIME_ERROR: Final = 1
EXIT_USAGE: Final = 2


class UsageError(MinionError):
    """A mistake in the command line or configuration; exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minion-daemon",
        description="A PostgreSQL job-queue daemon, wire-compatible with Perl's Minion.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate = commands.add_parser(
        "migrate",
        help="migrate the Minion schema and print the resulting version",
        description="Migrate the Minion schema (Mojo::Pg bookkeeping, shared with Perl Minion)"
        " up or down to a version, and print the version the database is at afterwards.",
    )
    migrate.add_argument(
        "--to",
        type=int,
        metavar="N",
        help="target version, up or down (0 removes all); default: up to"
        " postgres.max_schema_version, never down",
    )
    _add_connection_options(migrate)
    migrate.set_defaults(run=_migrate)
    _add_worker_parser(commands)
    run = commands.add_parser(
        "run",
        help="run the daemon: supervised worker processes, repair and schedules",
        description="Run the supervisor in the foreground. TERM/INT stop it gracefully (jobs get"
        " shutdown.graceful_timeout to finish), QUIT at once, HUP reloads the config, TTIN/TTOU"
        " add or remove a worker process.",
    )
    _add_connection_options(run)
    run.set_defaults(run=_run)
    check = commands.add_parser(
        "check-config",
        help="validate a config file and print the effective configuration, secrets redacted",
        description="Validate a config file and print the effective configuration, secrets"
        " redacted, after a comment naming the keys a reload (HUP) cannot change.",
    )
    check.add_argument("file", type=Path)
    check.set_defaults(run=_check_config)
    add_job_commands(commands, _add_connection_options, _config, resolve_dsn)
    admin_command.add_parser(commands, _add_connection_options, _config, resolve_dsn)
    return parser


def _check_config(arguments: argparse.Namespace) -> int:
    config = load_config(arguments.file)
    # Comments, so that the output stays the YAML of the effective configuration.
    print("# A reload (HUP) applies every key at once but these, which need a restart:")
    print(f"#   {', '.join(RESTART_KEYS)}")
    print(yaml.safe_dump(describe(config), sort_keys=False), end="")
    return 0


def _add_worker_parser(commands: Any) -> None:
    worker = commands.add_parser(
        "worker",
        help="run one worker in the foreground (Perl's `minion worker`)",
        description="Run one worker in the foreground with the tasks of the minion_daemon.tasks"
        " entry points. INT/TERM stop it after running jobs end; QUIT kills them.",
    )
    option = worker.add_argument
    option("--async-jobs", type=int, metavar="N", help="concurrent async jobs, default 100")
    option(
        "--async-block-grace",
        type=float,
        metavar="SECONDS",
        help="kill the event loop held this long by one coroutine, default 10",
    )
    option("--batch", type=int, metavar="N", help="inline jobs per claim (batched mode), default 1")
    option("-C", "--command-interval", type=float, metavar="SECONDS", help="default 10")
    option("-D", "--dequeue-timeout", type=float, metavar="SECONDS", help="default 5")
    option("--dispatch-interval", type=float, metavar="SECONDS", help="default 30, 0 disables")
    option("-I", "--heartbeat-interval", type=float, metavar="SECONDS", help="default 300")
    option("-j", "--jobs", type=int, metavar="N", help="job processes, default 4")
    option("-L", "--limit", action="append", default=[], metavar="TASK=N", help="task limit")
    option("-q", "--queue", action="append", dest="queues", metavar="NAME", help="default default")
    option("-R", "--repair-interval", type=float, metavar="SECONDS", help="default 21600")
    option("-s", "--spare", type=int, metavar="N", help="spare processes, default 1")
    option("-S", "--spare-min-priority", type=int, metavar="N", help="default 1")
    option(
        "-t",
        "--task",
        action="append",
        dest="tasks",
        metavar="NAME",
        help="load only these entry points (default: all)",
    )
    _add_connection_options(worker)
    worker.set_defaults(run=_worker)


_STATUS_OPTIONS: Final = (
    "async_jobs",
    "async_block_grace",
    "command_interval",
    "dequeue_timeout",
    "dispatch_interval",
    "heartbeat_interval",
    "jobs",
    "queues",
    "repair_interval",
    "spare",
    "spare_min_priority",
    "batch",
)


def _limits(values: list[str]) -> dict[str, int]:
    limits = {}
    for value in values:
        task, _, count = value.partition("=")
        if not task or not count.isdigit():
            raise UsageError(f"-L/--limit expects TASK=N, got {value!r}")
        limits[task] = int(count)
    return limits


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", help=f"database (default: ${DSN_ENVIRONMENT_VARIABLE}, then the config file)"
    )
    parser.add_argument(
        "-c", "--config", type=Path, help=f"YAML config file (default: {DEFAULT_CONFIG} if present)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="the private PostgreSQL cluster's directory, used when no database is given: `run`"
        " starts the cluster there, the other commands use it while a daemon runs it (default:"
        f" ${STATE_DIR_ENVIRONMENT_VARIABLE}, else {default_state_dir()})",
    )


def _config(arguments: argparse.Namespace) -> Config:
    path: Path | None = arguments.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path)


def _given_dsn(arguments: argparse.Namespace, config: Config) -> str | None:
    """``--dsn``, else ``$MINION_DAEMON_DSN``, else ``postgres.dsn`` of the config file (the
    config loader applies the variable), else the database :func:`main` was given."""
    return arguments.dsn or config.postgres.dsn or arguments.database


def resolve_dsn(arguments: argparse.Namespace, config: Config) -> str:
    """The DSN given (:func:`_given_dsn`), else the private cluster a daemon runs in the
    state directory."""
    dsn = _given_dsn(arguments, config)
    if dsn:
        return dsn
    cluster = EmbeddedPostgres(arguments.state_dir or default_state_dir())
    if not cluster.serving:
        raise UsageError(
            f"no database given, and no daemon runs a private cluster in {cluster.state_dir}:"
            f" pass --dsn, set {DSN_ENVIRONMENT_VARIABLE}, set postgres.dsn in the config file,"
            " or start `minion-daemon run` (with the same --state-dir)"
        )
    return cluster.dsn


def _migrate(arguments: argparse.Namespace) -> int:
    config = _config(arguments)
    backend = PgBackend.from_settings(
        config.postgres, resolve_dsn(arguments, config), pooled=False
    )
    try:
        print(backend.migrate(arguments.to))
        # stdout stays Minion's version alone, which scripts read; our own tables go to stderr.
        print(
            f"minion-daemon: minion_daemon tables at version {backend.own_schema_version}",
            file=sys.stderr,
        )
    finally:
        backend.close()
    return 0


def _worker(arguments: argparse.Namespace) -> int:
    config = _config(arguments)
    status: dict[str, Any] = {
        key: getattr(arguments, key)
        for key in _STATUS_OPTIONS
        if getattr(arguments, key) is not None
    }
    status["limits"] = _limits(arguments.limit)
    logs.configure(config.logging.format, config.logging.level)
    minion = Minion(PgBackend.from_settings(config.postgres, resolve_dsn(arguments, config)))
    try:
        load_into(minion.tasks, arguments.tasks)
        minion.worker(**status).run()
    finally:
        minion.close()
    return 0


def _run(arguments: argparse.Namespace) -> int:
    config = _config(arguments)
    logs.configure(config.logging.format, config.logging.level)
    path: Path | None = arguments.config
    dsn = _given_dsn(arguments, config)
    if dsn:
        return Supervisor(config, dsn, path).run()
    # No database anywhere: a newcomer's first run gets a private cluster, reused next time.
    with EmbeddedPostgres(arguments.state_dir or default_state_dir()) as database:
        return Supervisor(config, database.dsn, path).run()


def main(argv: Sequence[str] | None = None, *, database: str | None = None) -> int:
    """Run one command; returns the process exit code. ``database``: the DSN to use when
    none is given, in place of the private cluster (``manage.py minion_daemon`` passes
    Django's)."""
    arguments = _parser().parse_args(argv)
    arguments.database = database
    try:
        return int(arguments.run(arguments))
    except (UsageError, ConfigError, TaskLoadError, TaskConflictError) as error:
        print(f"minion-daemon: {error}", file=sys.stderr)
        return EXIT_USAGE
    except MinionError as error:
        print(f"minion-daemon: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
