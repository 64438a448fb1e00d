"""A job process holds nothing of its parents' network: no metrics socket, no database session.

The supervisor binds the metrics socket and opens a database connection; each worker process
opens its pool and a LISTEN connection. A job process is forked from a worker, so without care
it would hold every one of them: task code able to write into the worker's (and the
supervisor's) sessions. The task ``open_sockets`` reports from inside the job process what it
holds while the task runs; it opens no connection of its own before its outcome is recorded.
"""

from __future__ import annotations

import signal
from typing import Any

from helpers.daemon import free_port
from helpers.security_tasks import sockets
from helpers.waiting import wait_until

from minion_daemon import Minion


def _settings(dsn: str, port: int) -> dict[str, Any]:
    return {
        "postgres": {"dsn": dsn},
        "workers": {"processes": 1, "dequeue_timeout": 1, "heartbeat_interval": 1},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "shutdown": {"graceful_timeout": 5},
    }


def test_a_job_process_holds_no_socket_of_its_worker_or_supervisor(
    start_daemon: Any, minion: Minion, dsn: str
) -> None:
    port = free_port()
    daemon = start_daemon(_settings(dsn, port))
    job_id = minion.enqueue("open_sockets")
    info = minion.result(job_id, timeout=30)
    assert info is not None
    assert info["state"] == "finished", info
    held: list[dict[str, Any]] = info["result"]
    listening = [entry for entry in held if entry.get("state") == "LISTEN"]
    assert listening == [], listening
    database = [entry for entry in held if entry["kind"] in ("tcp", "tcp6")]
    assert database == [], database
    # Nothing at all beyond standard input, output and error.
    assert [entry for entry in held if entry["fd"] > 2] == [], held
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors


def test_worker_processes_do_not_hold_the_metrics_socket(
    start_daemon: Any, minion: Minion, dsn: str
) -> None:
    port = free_port()
    daemon = start_daemon(_settings(dsn, port))
    [worker] = wait_until(lambda: minion.backend.list_workers(0, 10)["workers"], 30, "a worker")
    holders = {
        pid
        for pid in (daemon.process.pid, worker["pid"])
        for entry in sockets(pid)
        if entry.get("state") == "LISTEN" and entry.get("local", [None, 0])[1] == port
    }
    assert holders == {daemon.process.pid}
    daemon.signal(signal.SIGTERM)
    assert daemon.finish()[0] == 0
