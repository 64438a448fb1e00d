"""The example tasks, tested with minion-daemon's pytest plugin (docs/testing.md): install
this package and minion-daemon, then run ``pytest`` here; the fixtures come with the plugin."""

from __future__ import annotations

from minion_daemon import Minion
from minion_daemon.eager import EagerMinion


def test_echo_returns_its_arguments(minion_eager: EagerMinion) -> None:
    info = minion_eager.info(minion_eager.enqueue("echo", [1, "two", None]))
    assert (info["state"], info["result"]) == ("finished", [1, "two", None])


def test_fail_fails_with_the_message(minion_eager: EagerMinion) -> None:
    info = minion_eager.info(minion_eager.enqueue("fail", ["on purpose"]))
    assert info["state"] == "failed"
    assert info["result"].startswith("RuntimeError: on purpose")


def test_every_task_runs_in_a_worker(minion: Minion) -> None:
    noop, echo = minion.enqueue("noop"), minion.enqueue("echo", ["hi"])
    sleep, fail = minion.enqueue("sleep", [0.1]), minion.enqueue("fail")
    minion.perform_jobs()
    states = {job["id"]: (job["state"], job["result"]) for job in minion.enqueued()}
    assert states[noop] == ("finished", None)
    assert states[echo] == ("finished", ["hi"])
    assert states[sleep] == ("finished", 0.1)
    assert states[fail][0] == "failed"


def test_sleep_past_its_timeout_fails(minion: Minion) -> None:
    minion.tasks.configure("sleep", mode="inline", timeout=0.5)
    job_id = minion.enqueue("sleep", [30])
    minion.perform_jobs()
    [info] = minion.enqueued(task="sleep")
    assert (info["id"], info["state"]) == (job_id, "failed")
    assert info["result"] == "Job timed out after 0.5 seconds"
