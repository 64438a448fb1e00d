"""minion-daemon: a PostgreSQL job-queue daemon for Python, wire-compatible with Perl's Minion."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from minion_daemon.backend import Backend, PgBackend
from minion_daemon.job import Job
from minion_daemon.minion import Minion
from minion_daemon.worker import Worker

try:
    __version__ = version("minion-daemon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Backend", "Job", "Minion", "PgBackend", "Worker", "__version__"]
