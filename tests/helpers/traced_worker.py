"""Run one worker of traced tasks until the queue is empty: python traced_worker.py DSN SPANS
STATUS_JSON.

With SPANS a directory, the OpenTelemetry SDK is configured as :mod:`helpers.traced_tasks`
does for a daemon (its spans land in SPANS only when flushed); with ``-``, not at all.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from helpers.traced_tasks import configure, failing, sleeping, traced
from minion_daemon import Minion, tracing
from minion_daemon.backend import PgBackend


def main() -> None:
    dsn, spans, status = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if spans != "-":
        configure(Path(spans))
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    minion.add_task("traced", traced)
    minion.add_task("traced_inline", traced, mode="inline")
    # Retried at once, so that a run sees its second attempt.
    minion.add_task("failing", failing, backoff=lambda _: 0)
    minion.add_task("failing_inline", failing, mode="inline")
    minion.add_task("sleeping", sleeping, timeout=0.5)
    worker = minion.worker(**status)
    worker.on("wait", lambda _: _stop_when_drained(minion))
    worker.run()
    minion.close()
    # A daemon's worker process leaves through proc.fork, which flushes; this one is a script.
    tracing.flush()


def _stop_when_drained(minion: Minion) -> None:
    stats = minion.stats()
    if stats["inactive_jobs"] == 0 and stats["active_jobs"] == 0:
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
