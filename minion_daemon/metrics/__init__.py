"""Prometheus metrics of the daemon (the catalogue: ``docs/metrics.md``).

Three sources, one scrape: worker processes count jobs, the supervisor counts its own work,
and a metrics process (forked and supervised by the supervisor) serves HTTP and queries the
database. The processes share numbers through prometheus-client's multiprocess mode: each
writes files of its own into a directory the supervisor made, which the metrics process reads.

Multiprocess mode must be chosen before the first metric of a process exists, which is why
:func:`enable_multiprocess` runs before anything here creates one, and why no metric is
created at import time (importing these modules early is safe).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from prometheus_client import multiprocess, values

MULTIPROCESS_ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: The metrics directories of supervisors are named ``<prefix><pid>-<random>``.
DIRECTORY_PREFIX = "minion-daemon-metrics-"


def make_directory(parent: str | None) -> Path:
    """A new directory for this supervisor's metric files in ``parent`` (the temporary
    directory when ``None``), after removing those of supervisors that are gone.

    A supervisor killed with kill -9 cannot remove its directory; its pid in the name tells the
    next one whether the directory is still in use.
    """
    base = Path(parent or tempfile.gettempdir())
    for directory in base.glob(f"{DIRECTORY_PREFIX}*"):
        if _abandoned(directory):
            shutil.rmtree(directory, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-", dir=base))


def _abandoned(directory: Path) -> bool:
    """Ours (same owner) and made by a supervisor no longer running.

    Our own pid in an existing name was left by an earlier life of this pid (PID 1 of a
    container with a kept /tmp, say): this supervisor has not made its directory yet.
    """
    pid, _, rest = directory.name.removeprefix(DIRECTORY_PREFIX).partition("-")
    if not (pid.isdigit() and rest):
        return False
    try:
        owner = directory.lstat().st_uid
    except OSError:
        return False  # removed meanwhile by another supervisor
    return owner == os.geteuid() and (int(pid) == os.getpid() or not _running(int(pid)))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process
    return True


def enable_multiprocess(directory: Path) -> None:
    """Make every metric created from now on, here and in forked children, write its values
    to files in ``directory``."""
    os.environ[MULTIPROCESS_ENVIRONMENT_VARIABLE] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_process(pid: int, directory: Path) -> None:
    """Drop the live gauges of an ended process (its counters stay: totals never go back)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
