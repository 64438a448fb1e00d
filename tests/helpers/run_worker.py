"""Run one worker of the test tasks in this process: python run_worker.py DSN STATUS_JSON.

Tests start it as a subprocess, so that it owns its main thread and signals, as a real worker
process does. It prints ``ready <worker id>`` once registered.
"""

from __future__ import annotations

import json
import sys

from helpers import async_tasks, worker_tasks
from minion_daemon import Minion, logs
from minion_daemon.backend import PgBackend


def main() -> None:
    dsn, status = sys.argv[1], json.loads(sys.argv[2])
    timeouts = status.pop("timeouts", {})
    inline = status.pop("inline", [])
    if "log_format" in status:
        logs.configure(status.pop("log_format"), "debug")
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    for name, task in {**worker_tasks.TASKS, **async_tasks.TASKS}.items():
        # Unless inline: each task's own mode (fork, or async for a coroutine).
        mode = "inline" if name in inline else None
        minion.add_task(name, task, mode=mode, timeout=timeouts.get(name))
    worker = minion.worker(**status)
    worker.on("wait", _announce)
    worker.run()
    minion.close()


def _announce(worker: object) -> None:
    if not getattr(_announce, "done", False):
        print(f"ready {getattr(worker, 'id', None)}", flush=True)
        _announce.done = True  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
