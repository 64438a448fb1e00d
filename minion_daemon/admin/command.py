"""``minion-daemon admin``: the admin UI alone, for a host without workers; and
``--hash-password``, which makes the value of ``admin.password_hash``."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import Any

from minion_daemon import logs
from minion_daemon.admin import server
from minion_daemon.admin.auth import hash_password
from minion_daemon.config import Config, ConfigError

log = logs.get_logger("minion_daemon.admin")


def add_parser(
    commands: Any,
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    config: Callable[[argparse.Namespace], Config],
    dsn: Callable[[argparse.Namespace, Config], str],
) -> None:
    """Add ``admin`` to ``commands``; it connects as the other commands do."""
    admin = commands.add_parser(
        "admin",
        help="serve the web admin UI alone (the daemon serves it too, at admin.listen)",
        description="Serve the web admin UI in the foreground, without workers; it never"
        " migrates the schema. Read-only unless admin.password_hash is set.",
    )
    admin.add_argument("--listen", metavar="HOST:PORT", help="default: admin.listen")
    admin.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (twice on a terminal, else one line of stdin), print its hash",
    )
    add_connection_options(admin)

    def run(arguments: argparse.Namespace) -> int:
        if arguments.hash_password:
            print(hash_password(_read_password()))
            return 0
        settings = config(arguments)
        logs.configure(settings.logging.format, settings.logging.level)
        listener, credentials = server.prepare(settings, arguments.listen)
        address = "{}:{}".format(*listener.getsockname()[:2])
        log.info("admin.serving", listen=address, actions=credentials.configured)
        return server.run(
            settings, dsn(arguments, settings), credentials, server.new_secret(), listener
        )

    admin.set_defaults(run=run)


def _read_password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise ConfigError("admin", "--hash-password", "the two passwords differ")
    if not password:
        raise ConfigError("admin", "--hash-password", "an empty password is no password")
    return password
