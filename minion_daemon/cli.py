"""The ``minion-daemon`` command line: parses arguments and calls the public API, nothing else.

Exit codes: 0 success, 1 a runtime error (the database said no or could not be reached),
2 a usage or configuration error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from minion_daemon import __version__
from minion_daemon.backend import PgBackend
from minion_daemon.config import DSN_ENVIRONMENT_VARIABLE, Config, ConfigError, load_config
from minion_daemon.errors import MinionError

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
        "--to", type=int, metavar="N", help="target version (default: the latest; 0 removes all)"
    )
    _add_connection_options(migrate)
    return parser


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dsn", help=f"database (default: ${DSN_ENVIRONMENT_VARIABLE}, then the config file)"
    )
    parser.add_argument(
        "-c", "--config", type=Path, help=f"YAML config file (default: {DEFAULT_CONFIG} if present)"
    )


def _config(arguments: argparse.Namespace) -> Config:
    path: Path | None = arguments.config
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    return load_config(path) if path is not None else Config()


def resolve_dsn(arguments: argparse.Namespace, config: Config) -> str:
    """``--dsn``, else ``$MINION_DAEMON_DSN``, else ``postgres.dsn`` of the config file."""
    dsn = arguments.dsn or os.environ.get(DSN_ENVIRONMENT_VARIABLE) or config.postgres.dsn
    if not dsn:
        raise UsageError(
            f"no database given: pass --dsn, set {DSN_ENVIRONMENT_VARIABLE},"
            " or set postgres.dsn in the config file"
        )
    return dsn


def _migrate(arguments: argparse.Namespace) -> int:
    config = _config(arguments)
    backend = PgBackend(
        resolve_dsn(arguments, config),
        pooled=False,
        application_name=config.postgres.application_name,
        connect_timeout=config.postgres.connect_timeout,
    )
    try:
        print(backend.migrate(arguments.to))
    finally:
        backend.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    arguments = _parser().parse_args(argv)
    try:
        return _migrate(arguments)
    except (UsageError, ConfigError) as error:
        print(f"minion-daemon: {error}", file=sys.stderr)
        return EXIT_USAGE
    except MinionError as error:
        print(f"minion-daemon: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
