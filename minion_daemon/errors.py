"""The exception hierarchy of minion-daemon.

Errors a user can cause are ``ValueError``/``TypeError`` subclasses (bad options, bad cron
expressions) or :class:`BackendError` subclasses (the database said no); nothing above
``minion_daemon.backend`` ever sees a psycopg exception.
"""

from __future__ import annotations


class MinionError(Exception):
    """Base class of every error minion-daemon raises on purpose."""


class CronError(MinionError, ValueError):
    """A cron expression that cannot be parsed, or one that never matches."""


class BackendError(MinionError):
    """The database refused or failed an operation; the message says which and why."""


class DatabaseUnavailableError(BackendError):
    """The database cannot be reached (connection refused, dropped or timed out)."""


class SchemaError(BackendError):
    """The database schema is missing, too old, or newer than this code can migrate."""


class JobNotFoundError(MinionError, LookupError):
    """No job has the id given (it never existed, or it was removed)."""
