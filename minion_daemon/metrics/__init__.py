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
from pathlib import Path

from prometheus_client import multiprocess, values

MULTIPROCESS_ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def enable_multiprocess(directory: Path) -> None:
    """Make every metric created from now on, here and in forked children, write its values
    to files in ``directory``."""
    os.environ[MULTIPROCESS_ENVIRONMENT_VARIABLE] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def forget_process(pid: int, directory: Path) -> None:
    """Drop the live gauges of an ended process (its counters stay: totals never go back)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
