"""The worker process: its settings, its loop, and its bootstrap under the daemon."""

from __future__ import annotations

from minion_daemon.worker.loop import Worker, desired_tasks
from minion_daemon.worker.settings import WorkerSettings

__all__ = ["Worker", "WorkerSettings", "desired_tasks"]
