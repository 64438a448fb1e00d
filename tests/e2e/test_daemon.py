"""`minion-daemon run` as a subprocess: worker processes, replacement, stops, reloads, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from helpers.daemon import Daemon, free_port
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion
from minion_daemon.backend import PgBackend

TESTS = Path(__file__).resolve().parents[1]
KILLED = "Job terminated unexpectedly (exit code: 0, signal: 9)"


def _worker_pids(minion: Minion) -> set[int]:
    return {worker["pid"] for worker in minion.backend.list_workers(0, 100)["workers"]}


def _state(minion: Minion, job_id: int) -> tuple[str, Any]:
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    return info["state"], info["result"]


def test_workers_register_and_a_killed_one_is_replaced(start: Any, minion: Minion) -> None:
    daemon, _ = start(minion={"missing_after": 3}, repair={"interval": 1})
    pids = wait_until(lambda: len(_worker_pids(minion)) == 2 and _worker_pids(minion), 30)
    job_id = minion.enqueue("sleep", [60], attempts=2)
    running = wait_until(
        lambda: minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["worker"], 30
    )
    victim = next(
        w["pid"] for w in minion.backend.list_workers(0, 10)["workers"] if w["id"] == running
    )
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(_worker_pids(minion) - pids) == 1, 30, "a replacement worker")
    info = wait_until(
        lambda: (
            (job := minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0])["retries"] and job
        ),
        30,
        "repair to retry the job of the dead worker",
    )
    assert info["result"] == "Worker went away"
    daemon.signal(signal.SIGQUIT)
    assert daemon.finish()[0] == 0


def test_term_lets_running_jobs_finish_and_exits_0(start: Any, minion: Minion) -> None:
    daemon, _ = start()
    wait_until(lambda: len(_worker_pids(minion)) == 2, 30)
    job_id = minion.enqueue("sleep", [2])
    wait_until(lambda: _state(minion, job_id)[0] == "active", 30)
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert _state(minion, job_id) == ("finished", 2)
    assert minion.stats()["active_jobs"] == 0
    assert minion.stats()["workers"] == 0


def test_a_job_longer_than_the_graceful_timeout_is_killed_and_recorded(
    start: Any, minion: Minion
) -> None:
    daemon, _ = start(shutdown={"graceful_timeout": 1})
    wait_until(lambda: len(_worker_pids(minion)) == 2, 30)
    job_id = minion.enqueue("stubborn", [60], attempts=2)
    polite = minion.enqueue("sleep", [60])
    wait_until(lambda: _state(minion, job_id)[0] == _state(minion, polite)[0] == "active", 30)
    stopped = time.monotonic()
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert time.monotonic() - stopped < 1 + 10
    # TERM first, which ends a task that does not ignore it; KILL after the grace.
    assert _state(minion, polite) == ("failed", KILLED.replace("signal: 9", "signal: 15"))
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    assert (info["state"], info["result"], info["retries"]) == ("inactive", KILLED, 1)
    assert minion.stats()["active_jobs"] == 0


def test_hup_applies_a_new_process_count_and_keeps_a_broken_config_out(
    start: Any, minion: Minion
) -> None:
    daemon, config = start()
    first = wait_until(lambda: len(_worker_pids(minion)) == 2 and _worker_pids(minion), 30)
    settings = yaml.safe_load(config.read_text())
    settings["workers"]["processes"] = 3
    config.write_text(yaml.safe_dump(settings))
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: len(pids := _worker_pids(minion)) == 3 and not pids & first,
        60,
        "three new workers replacing the old ones after HUP",
    )
    config.write_text("workers: {processes: many}\n")
    daemon.signal(signal.SIGHUP)
    time.sleep(2)
    assert daemon.process.poll() is None
    assert len(_worker_pids(minion)) == 3
    daemon.signal(signal.SIGTTOU)
    wait_until(lambda: len(_worker_pids(minion)) == 2, 30, "one worker fewer after TTOU")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0
    assert "config.reload_failed" in errors
    assert "workers.processes: expected an integer" in errors


BAD_CONFIGS = [
    ("workers: {processes: -1}\n", 2, "workers.processes: expected an integer from 0 to 1024"),
    ("nonsense: 1\n", 2, "nonsense: unknown section"),
    ("postgres: {dsn: 'host=127.0.0.1 port=1 connect_timeout=1'}\n", 1, "unavailable"),
    ("tasks: {entry_points: [absent]}\n", 2, "no minion_daemon.tasks entry point"),
]


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=["range", "section", "database", "tasks"])
def test_bad_config_stops_before_forking(
    tmp_path: Path, task_path: Path, dsn: str, case: tuple[str, int, str]
) -> None:
    config, code, message = case
    path = tmp_path / "bad.yaml"
    path.write_text(config if "postgres" in config else f"postgres: {{dsn: '{dsn}'}}\n{config}")
    daemon = Daemon(path, task_path, f"127.0.0.1:{free_port()}")
    exit_code, errors = daemon.finish()
    assert exit_code == code, errors
    assert message in errors
    assert "Traceback" not in errors
    assert "worker.spawned" not in errors


def test_systemd_hears_ready_status_watchdog_and_stopping(
    start: Any, minion: Minion, tmp_path: Path
) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(30)
        environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
        daemon, _ = start(environ=environ)
        heard: list[str] = []
        while not any(m.startswith("WATCHDOG=1") for m in heard) or not any(
            "STATUS=" in m for m in heard
        ):
            heard.append(listener.recv(4096).decode())
        assert heard[0].startswith("READY=1\nSTATUS="), heard
        wait_until(lambda: len(_worker_pids(minion)) == 2, 30)
        daemon.signal(signal.SIGTERM)
        while not heard[-1].startswith("STOPPING=1"):
            heard.append(listener.recv(4096).decode())
        assert daemon.finish()[0] == 0
    assert not any("NOTIFY_SOCKET" in m for m in heard)


def _migrated(dsn: str) -> bool:
    try:
        return bool(execute(dsn, "SELECT version FROM mojo_migrations WHERE version = 25"))
    except psycopg.errors.UndefinedTable:
        return False


LINE_FIELDS = {"event", "level", "logger", "pid", "timestamp"}
JOB_FIELDS = {"job_id", "task", "queue", "retries"}


def test_every_log_line_is_json_with_its_fields_and_no_password(
    start: Any, make_database: Any
) -> None:
    """A fresh database (so the migration is logged), a DSN with a password, then a job that
    finishes, one that fails, a worker killed, a broken reload and a stop: every line of
    stderr is one JSON object carrying the fields its kind promises."""
    password = "hunter2-not-in-logs"
    dsn = f"{make_database(None)} password={password}"
    daemon, config = start(postgres={"dsn": dsn}, logging={"format": "json"})
    wait_until(lambda: _migrated(dsn), 30, "the daemon to migrate the fresh database")
    minion = Minion(PgBackend(dsn, min_size=0, auto_migrate=False))
    try:
        pids = wait_until(lambda: len(_worker_pids(minion)) == 2 and _worker_pids(minion), 30)
        done = minion.enqueue("add", [1, 2], queue="default")
        failing = minion.enqueue("add", ["not", "numbers", "at all"])
        wait_until(lambda: _state(minion, done)[0] == "finished", 30)
        wait_until(lambda: _state(minion, failing)[0] == "failed", 30)
        # A worker logs a job's end just after recording it: killing it in between would lose
        # the very lines this test reads.
        assert daemon.log is not None
        logged = daemon.log
        wait_until(
            lambda: '"job.failed"' in logged.read_text() and '"job.finished"' in logged.read_text(),
            30,
            "the jobs' log lines",
        )
        os.kill(min(pids), signal.SIGKILL)
        wait_until(lambda: len(_worker_pids(minion) - pids) >= 1, 30, "a replacement worker")
    finally:
        minion.close()
    config.write_text("workers: {processes: -1}\n")
    daemon.signal(signal.SIGHUP)
    assert daemon.log is not None
    wait_until(lambda: "config.reload_failed" in daemon.log.read_text(), 30, "the reload")
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert password not in errors
    lines = [json.loads(line) for line in errors.splitlines()]
    for line in lines:
        assert line.keys() >= LINE_FIELDS, line
    events: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        events.setdefault(line["event"], []).append(line)
        if line["logger"] == "minion_daemon.worker":
            assert "worker_id" in line, line
        if line["event"].startswith("job."):
            assert line.keys() >= JOB_FIELDS, line
    assert events["schema.migrated"][0]["version"] == 25
    assert events["repair.done"][0].keys() >= {"workers_removed", "jobs_failed_worker_gone"}
    [finished] = [e for e in events["job.finished"] if e["job_id"] == done]
    assert (finished["task"], finished["queue"], finished["retries"]) == ("add", "default", 0)
    assert finished["duration"] > 0
    [failed] = [e for e in events["job.failed"] if e["job_id"] == failing]
    assert "TypeError" in failed["error"]
    assert {e["job_id"] for e in events["job.started"]} >= {done, failing}
    assert len(events["worker.spawned"]) >= 3
    killed = [e for e in events["worker.exited"] if e["worker_pid"] == min(pids)]
    assert killed[0]["signal"] == "SIGKILL"
    assert "workers.processes" in events["config.reload_failed"][0]["error"]
    assert {"supervisor.started", "supervisor.stopping", "supervisor.stopped"} <= events.keys()
