"""minion-daemon: a PostgreSQL job-queue daemon for Python, wire-compatible with Perl's Minion."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from minion_daemon.backend import Backend, PgBackend

try:
    __version__ = version("minion-daemon")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Backend", "PgBackend", "__version__"]
