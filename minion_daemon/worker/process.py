"""A daemon worker process's bootstrap: load the tasks, start the worker, talk to the
supervisor over the liveness pipe.

The pipe carries a byte on every pulse (the supervisor's proof of life) and, once the worker
is registered, ``id=N\\n`` (the supervisor then knows whose jobs to fail if this process dies:
told by the process itself, since a row found by (host, pid) could be another's, where a pid
was reused or containers on one database share a host name).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from typing import TYPE_CHECKING, Final

from minion_daemon import logs, proc
from minion_daemon.backend import PgBackend
from minion_daemon.metrics.families import WorkerMetrics
from minion_daemon.minion import Minion
from minion_daemon.tasks import TaskConflictError, TaskLoadError
from minion_daemon.tasks.discovery import load_into
from minion_daemon.worker.loop import Worker
from minion_daemon.worker.settings import WorkerSettings

if TYPE_CHECKING:
    from minion_daemon.config import Config

log = logs.get_logger("minion_daemon.worker")

#: Exit code of a worker process that cannot boot (tasks fail to load): the daemon halts.
EXIT_BOOT_ERROR: Final = 3
#: Exit code of a worker whose fork server died: the supervisor replaces it.
EXIT_BROKEN: Final = 1
_WORKER_ID: Final = re.compile(rb"id=([0-9]+)\n")


def read_worker_id(data: bytes) -> tuple[int | None, bytes]:
    """The worker id last announced in ``data``, read from a liveness pipe, and the tail of
    ``data`` that a message cut off by the read may continue in the next."""
    found = [int(match[1]) for match in _WORKER_ID.finditer(data)]
    return (found[-1] if found else None), data[data.rfind(b"\n") + 1 :][-32:]


def run_worker_process(config: Config, dsn: str, liveness: int) -> int:
    """The body of a forked worker process: load tasks, run a Worker, ping the supervisor."""
    proc.set_title(f"worker {os.getpid()}", "minion-worker")
    minion = Minion(PgBackend.from_settings(config.postgres, dsn, auto_migrate="off"))
    try:
        load_tasks(minion, config)
    except (TaskLoadError, TaskConflictError) as error:
        log.error("worker.tasks_failed", error=str(error))
        return EXIT_BOOT_ERROR
    worker = Worker(minion, WorkerSettings.from_config(config.workers))
    if config.metrics.enabled:
        WorkerMetrics().attach(worker)
    os.set_blocking(liveness, False)  # a supervisor slow to read must never stall the worker

    def ping(_: object) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(liveness, b".")

    def announce(_: object, worker_id: int) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(liveness, b"id=%d\n" % worker_id)

    worker.on("pulse", ping)
    worker.on("registered", announce)
    worker.run()
    minion.close()
    return EXIT_BROKEN if worker.broken else 0


def load_tasks(minion: Minion, config: Config) -> None:
    """The tasks of the config: its modules, its entry points, its per-task settings."""
    for module in config.tasks.modules:
        importlib.import_module(module)
    load_into(minion.tasks, config.tasks.entry_points)
    for name, settings in config.workers.tasks.items():
        minion.tasks.configure(
            name,
            mode=settings.mode,
            timeout=settings.timeout,
            retry=settings.retry,
            limit=settings.limit,
        )
