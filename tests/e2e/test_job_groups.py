"""Ending a job ends its whole process group: a task's own child processes do not outlive it,
whether the job timed out, was stopped or killed remotely, or the daemon stopped."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from helpers.daemon import add_distribution
from helpers.processes import parent
from helpers.waiting import wait_until

from minion_daemon import Minion

#: Seconds a job's child may take to be gone once the job is recorded failed.
GONE_LIMIT = 3.0


@pytest.fixture
def start_with_child(task_path: Path, start: Any) -> Any:
    """``start`` with the task ``with_child`` (helpers.worker_tasks) installed too."""
    add_distribution(
        task_path, "group-test-tasks", {"with_child": "helpers.worker_tasks:with_child"}
    )
    return start


def _child_of(minion: Minion, job_id: int) -> int:
    """The pid of the child the job's task started, once it noted it."""
    return int(
        wait_until(
            lambda: minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]["notes"].get(
                "child"
            ),
            30,
            "the task to start its child",
        )
    )


def _failed(minion: Minion, job_id: int) -> str:
    info = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0]
    return str(info["result"]) if info["state"] == "failed" else ""


def _assert_gone(child: int) -> None:
    wait_until(lambda: parent(child) is None, GONE_LIMIT, f"the task's child {child} to end")


def test_a_timeout_ends_the_tasks_children(start_with_child: Any, minion: Minion) -> None:
    start_with_child(workers={"tasks": {"with_child": {"timeout": 1}}})
    job_id = minion.enqueue("with_child", [60])
    child = _child_of(minion, job_id)
    assert wait_until(lambda: _failed(minion, job_id), 30).startswith("Job timed out")
    _assert_gone(child)


@pytest.mark.parametrize("command", [["stop"], ["kill", "TERM"], ["kill", "INT"]])
def test_a_remote_stop_or_kill_ends_the_tasks_children(
    command: list[str], start_with_child: Any, minion: Minion
) -> None:
    start_with_child()
    job_id = minion.enqueue("with_child", [60])
    child = _child_of(minion, job_id)
    minion.backend.broadcast(command[0], [*command[1:], job_id])
    assert wait_until(lambda: _failed(minion, job_id), 30).startswith("Job terminated")
    _assert_gone(child)


def test_a_daemon_stop_ends_the_tasks_children(start_with_child: Any, minion: Minion) -> None:
    daemon, _ = start_with_child(shutdown={"graceful_timeout": 1})
    job_id = minion.enqueue("with_child", [60])
    child = _child_of(minion, job_id)
    daemon.signal(signal.SIGTERM)
    code, errors = daemon.finish()
    assert code == 0, errors
    assert _failed(minion, job_id).startswith("Job terminated")
    _assert_gone(child)
