"""Registration of the ``job`` and ``schedule`` subcommands on ``minion-daemon``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from minion_daemon.cli_jobs import job, queue, schedule
from minion_daemon.cli_jobs.setup import Connector
from minion_daemon.config import Config


def add_commands(
    commands: Any,
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    config: Callable[[argparse.Namespace], Config],
    dsn: Callable[[argparse.Namespace, Config], str],
) -> None:
    """Add ``job``, ``schedule`` and ``queue`` to ``commands`` (argparse's subparsers). They
    connect as the other commands do: ``cli.py`` lends its connection options, config and DSN
    lookup."""
    connector = Connector(add_connection_options, config, dsn)
    job.add_parser(commands, connector)
    schedule.add_parser(commands, connector)
    queue.add_parser(commands, connector)
