"""`minion-daemon worker`: tasks from real entry points, Perl's options, clean stop and errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.daemon import add_distribution
from helpers.sql import execute
from helpers.waiting import wait_until

from minion_daemon import Minion

TASKS_MODULE = '''
def shout(job, text):
    return text.upper()
'''


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    """A directory holding an installed distribution with two minion_daemon.tasks entry points:
    a working one and one whose module fails to import."""
    (tmp_path / "shouting_tasks.py").write_text(TASKS_MODULE, encoding="utf-8")
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('no config')\n", encoding="utf-8")
    points = {"shout": "shouting_tasks:shout", "broken": "broken_tasks:run"}
    return add_distribution(tmp_path, "shouting-tasks", points)


def _command(task_path: Path, *arguments: str) -> tuple[list[str], dict[str, str]]:
    environment = dict(os.environ, PYTHONPATH=str(task_path))
    return [sys.executable, "-m", "minion_daemon", "worker", *arguments], environment


def test_worker_runs_entry_point_tasks_with_perl_options(
    task_path: Path, dsn: str, minion: Minion
) -> None:
    argv, environment = _command(
        task_path, "--dsn", dsn, "-t", "shout", "-j", "2", "-q", "loud", "-q", "default",
        "-D", "1", "-C", "1", "-I", "1", "-R", "0", "-L", "shout=1", "-s", "0", "-S", "3",
    )
    worker = subprocess.Popen(argv, env=environment, stderr=subprocess.PIPE, text=True)
    try:
        job_id = minion.enqueue("shout", ["hello"], queue="loud")
        info = minion.result(job_id, timeout=30, interval=0.05)
        assert info is not None
        assert (info["state"], info["result"]) == ("finished", "HELLO")
        wait_until(lambda: minion.stats()["workers"] == 1, 30, "the worker to register")
        status = minion.backend.list_workers(0, 1)["workers"][0]["status"]
        assert status["type"] == "Python"
        assert (status["jobs"], status["spare"], status["spare_min_priority"]) == (2, 0, 3)
        assert (status["queues"], status["limits"]) == (["loud", "default"], {"shout": 1})
        assert (status["dequeue_timeout"], status["repair_interval"]) == (1, 0)
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
        assert worker.returncode == 0, errors
        assert "worker.registered" in errors
        assert "worker.stopped" in errors
    finally:
        if worker.returncode is None:
            worker.kill()
            worker.communicate()
    assert minion.stats()["workers"] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["-t", "missing"], "no minion_daemon.tasks entry point named 'missing'"),
        (["-t", "broken"], "cannot load entry point 'broken' = 'broken_tasks:run'"),
        (["-L", "shout"], "-L/--limit expects TASK=N"),
    ],
)
def test_worker_refuses_bad_tasks_with_one_line(
    task_path: Path, dsn: str, arguments: list[str], message: str
) -> None:
    argv, environment = _command(task_path, "--dsn", dsn, *arguments)
    done = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_worker_takes_the_pool_sizes_of_the_config(
    task_path: Path, tmp_path: Path, dsn: str, minion: Minion
) -> None:
    """Built by the one constructor every process uses: the pool is the section's, not the
    backend's default of 1 to 4 connections."""
    name = f"pool-sizes-{os.getpid()}"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"postgres: {{pool_min_size: 6, pool_max_size: 8, application_name: {name}}}\n",
        encoding="utf-8",
    )
    minion.stats()  # the schema, before the worker looks for it
    argv, environment = _command(task_path, "--dsn", dsn, "-c", str(config), "-t", "shout")
    worker = subprocess.Popen(argv, env=environment, stderr=subprocess.PIPE, text=True)
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    try:
        wait_until(lambda: execute(dsn, sessions, [name])[0][0] >= 6, 30, "six pooled sessions")
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
        assert worker.returncode == 0, errors
    finally:
        if worker.returncode is None:
            worker.kill()
            worker.communicate()
