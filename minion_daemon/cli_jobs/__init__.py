"""The ``job`` and ``schedule`` commands (Perl's ``minion job`` and ``minion schedule``), and
``queue`` (fleet control, beyond Perl).

Parsing and output only; they call the public API (``Minion``, ``Job``, and the backend's
listings as Perl's commands do). ``cli.py`` registers them with :func:`add_commands`.
"""

from __future__ import annotations

from minion_daemon.cli_jobs.register import add_commands

__all__ = ["add_commands"]
