"""EagerMinion (docs/testing.md): tasks run at enqueue, in this process, with no database."""

from __future__ import annotations

from typing import Any

import pytest

from minion_daemon.eager import EagerMinion
from minion_daemon.job import Job


class Doubling(Job):
    def run(self, value: int) -> Any:
        return {"doubled": value * 2, "class": type(self).__name__, "id": self.id}


def test_a_job_subclass_runs_as_its_own_class() -> None:
    eager = EagerMinion().add_task("double", Doubling)
    first, second = eager.enqueue("double", [2]), eager.enqueue("double", [3])
    assert (first, second) == (1, 2)
    assert eager.info(second)["result"] == {"doubled": 6, "class": "Doubling", "id": 2}


def test_what_needs_a_database_fails_the_job_saying_so() -> None:
    eager = EagerMinion().add_task("noter", lambda job: job.note(seen=True))
    info = eager.info(eager.enqueue("noter"))
    assert info["state"] == "failed"
    assert info["result"].startswith("minion_daemon.eager.EagerModeError: eager mode has no")
    assert "minion fixture" in info["result"].splitlines()[0]


def test_an_unregistered_task_fails_at_once() -> None:
    eager = EagerMinion()
    info = eager.info(eager.enqueue("nobody"))
    assert info["state"] == "failed"
    assert 'Task "nobody" is not registered' in info["result"]


def test_options_are_checked_and_kept_as_enqueue_does() -> None:
    eager = EagerMinion().add_task("noop", lambda job: None)
    with pytest.raises(ValueError, match="priority"):
        eager.enqueue("noop", priority=2**40)
    with pytest.raises(ValueError, match=r"unknown option 'whatever'"):
        eager.enqueue("noop", whatever=1)
    info = eager.info(eager.enqueue("noop", (1, 2), queue="q", priority=3, notes={"a": (1,)}))
    assert (info["args"], info["queue"], info["priority"]) == ([1, 2], "q", 3)
    assert info["notes"] == {"a": [1]}


def test_a_connection_given_to_enqueue_is_left_alone() -> None:
    """Code that enqueues in its transaction (docs/django.md) runs under eager mode too: the
    task runs now, and nothing touches the connection."""
    eager = EagerMinion().add_task("echo", lambda job, value: value)
    connection: Any = object()  # a connection would fail at the first use of any attribute
    assert eager.info(eager.enqueue("echo", [1], conn=connection))["result"] == 1
