"""minion-daemon: a PostgreSQL job-queue daemon for Python, wire-compatible with Perl's Minion.

The public names are imported when first used: pytest loads the ``minion_daemon.testing``
plugin in every run of an environment that has the package, and a run that uses none of its
fixtures must not pay for psycopg and the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from minion_daemon.async_job import AsyncJob
    from minion_daemon.async_minion import AsyncMinion
    from minion_daemon.backend import Backend, PgBackend
    from minion_daemon.job import Job
    from minion_daemon.minion import Minion
    from minion_daemon.worker import Worker

    __version__: str

_HOMES: Final = {
    "AsyncJob": "minion_daemon.async_job",
    "AsyncMinion": "minion_daemon.async_minion",
    "Backend": "minion_daemon.backend",
    "PgBackend": "minion_daemon.backend",
    "Job": "minion_daemon.job",
    "Minion": "minion_daemon.minion",
    "Worker": "minion_daemon.worker",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        return _version()
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'minion_daemon' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("minion-daemon")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found


__all__ = [
    "AsyncJob",
    "AsyncMinion",
    "Backend",
    "Job",
    "Minion",
    "PgBackend",
    "Worker",
    "__version__",
]
