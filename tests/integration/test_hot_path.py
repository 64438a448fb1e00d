"""What the worker's hot path relies on: sessions without JIT, the cheap pid note, prepared
claims that still honour every filter, and one log line per batch."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from typing import Any

import pytest

from minion_daemon import Job, Minion
from minion_daemon.backend import PgBackend
from minion_daemon.runners import Ended


@pytest.fixture
def minion(backend: PgBackend) -> Minion:
    return Minion(backend)


@pytest.mark.parametrize("pooled", [True, False])
def test_every_backend_session_runs_without_jit(dsn: str, pooled: bool) -> None:
    backend = PgBackend(dsn, pooled=pooled, min_size=0)
    try:
        assert backend.scalar("test", "SHOW jit") == "off"
        backend.dequeue(backend.register_worker(), 0.05)  # opens the LISTEN connection too
        listener = backend._listener
        assert listener is not None
        assert listener.execute("SHOW jit").fetchone() == {"jit": "off"}
    finally:
        backend.close()


def test_one_statement_records_successes_notes_pids_and_claims(backend: PgBackend) -> None:
    noop = {"tasks": ["noop"]}
    first = backend.enqueue("noop", [], {"notes": {"kept": [1, 2]}})
    second = backend.enqueue("noop")
    worker = backend.register_worker()
    turn = backend.settle_and_claim(worker, 2, noop)
    assert (turn.recorded, [job["id"] for job in turn.claimed]) == (frozenset(), [first, second])
    later = backend.enqueue("noop")
    urgent = backend.enqueue("noop", [], {"priority": 3})
    turn = backend.settle_and_claim(
        worker,
        1,
        noop,
        finished=[(first, 0, {"r": 1}, 4242), (second, 7, "stale", None)],
        pids=[(second, 4343)],
    )
    assert turn.recorded == {first}, "a stale holder's success is fenced off by retries"
    assert [job["id"] for job in turn.claimed] == [urgent]
    jobs = {job["id"]: job for job in backend.list_jobs(0, 10, {"ids": [first, second]})["jobs"]}
    assert (jobs[first]["state"], jobs[first]["result"]) == ("finished", {"r": 1})
    assert jobs[first]["notes"] == {"kept": [1, 2], "minion_pid": 4242}
    assert (jobs[second]["state"], jobs[second]["notes"]) == ("active", {"minion_pid": 4343})
    assert backend.settle_and_claim(worker, 0, noop).claimed == [], "limit 0 claims nothing"
    assert backend.list_jobs(0, 1, {"ids": [later]})["jobs"][0]["state"] == "inactive"
    with pytest.raises(ValueError, match="settle_and_claim: limit"):
        backend.settle_and_claim(worker, -1, noop)


def _claimed_id(backend: PgBackend, worker: int, options: dict[str, Any]) -> int | None:
    claimed = backend.dequeue(worker, 0, options)
    return None if claimed is None else claimed["id"]


def test_prepared_claims_keep_honouring_ids_tasks_and_priorities(backend: PgBackend) -> None:
    worker = backend.register_worker()
    # More claims than PostgreSQL's five custom plans, so later ones may use a generic plan.
    for _ in range(8):
        backend.enqueue("noop")
        assert _claimed_id(backend, worker, {"tasks": ["noop"]}) is not None
    low = backend.enqueue("noop", [], {"priority": -5})
    high = backend.enqueue("noop", [], {"priority": 5})
    other = backend.enqueue("other", [], {"priority": 9})
    assert _claimed_id(backend, worker, {"id": low}) == low
    assert _claimed_id(backend, worker, {"tasks": ["noop"]}) == high
    assert _claimed_id(backend, worker, {"tasks": ["noop"], "min_priority": 10}) is None
    assert _claimed_id(backend, worker, {"tasks": ["noop", "other"]}) == other


def _noop(job: Job) -> None:
    return None


def _broken(job: Job) -> None:
    raise RuntimeError("broken on purpose")


def test_a_batch_logs_one_line_and_its_successes_only_at_debug(
    minion: Minion, log_lines: io.StringIO
) -> None:
    minion.add_task("noop", _noop, mode="inline")
    minion.add_task("broken", _broken, mode="inline")
    ids = [minion.enqueue("noop") for _ in range(12)]
    broken = minion.enqueue("broken", attempts=1)
    worker = minion.worker(batch=5, dequeue_timeout=0.2, repair_interval=0)
    ended: list[int] = []

    def done(worker: Any, finished: Ended) -> None:
        ended.append(finished.job.id)
        if len(ended) == 13:
            os.kill(os.getpid(), signal.SIGTERM)

    worker.on("done", done)
    worker.run()
    assert sorted(ended) == sorted([*ids, broken])
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    batches = [line for line in lines if line["event"] == "batch.finished"]
    assert sum(line["jobs"] for line in batches) == 13
    assert sum(line["finished"] for line in batches) == 12
    assert sum(line["others"] for line in batches) == 1
    assert all(line["jobs"] <= 5 for line in batches)
    job_lines = [line for line in lines if line["event"].startswith("job.")]
    [failed] = job_lines
    assert (failed["event"], failed["job_id"]) == ("job.failed", broken)
    assert "broken on purpose" in failed["error"]


def _nap(job: Job) -> None:
    time.sleep(0.3)


def test_a_short_claim_is_not_repeated_until_news_comes(minion: Minion) -> None:
    """A claim that finds fewer jobs than the free slots found all there were: the worker
    waits (for a notification, or here the job's end) instead of claiming again at once, so
    a job costs two statements, the claim and the one that records it."""
    minion.add_task("nap", _nap, mode="fork")
    job_id = minion.enqueue("nap")
    worker = minion.worker(jobs=4, dequeue_timeout=30, repair_interval=0)
    #: (jobs recorded, jobs claimed) by each statement
    statements: list[tuple[int, int]] = []
    settle_and_claim = minion.backend.settle_and_claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        turn = settle_and_claim(*args, **kwargs)
        statements.append((len(kwargs.get("finished", [])), len(turn.claimed)))
        return turn

    minion.backend.settle_and_claim = counted  # type: ignore[method-assign]

    def done(worker: Any, ended: Ended) -> None:
        assert ended.job.id == job_id
        os.kill(os.getpid(), signal.SIGTERM)

    worker.on("done", done)
    try:
        worker.run()
    finally:
        worker.close()
    assert statements == [(0, 1), (1, 0)], "the claim that took the job, the one that recorded it"
    [info] = minion.backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert info["state"] == "finished"


def test_a_batch_is_recorded_by_the_statement_that_claims_the_next(minion: Minion) -> None:
    minion.add_task("noop", _noop, mode="inline")
    ids = [minion.enqueue("noop") for _ in range(12)]
    worker = minion.worker(batch=5, dequeue_timeout=30, repair_interval=0)
    statements: list[tuple[int, int]] = []
    settle_and_claim = minion.backend.settle_and_claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        turn = settle_and_claim(*args, **kwargs)
        statements.append((len(kwargs.get("finished", [])), len(turn.claimed)))
        if len(turn.recorded) and len(statements) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return turn

    minion.backend.settle_and_claim = counted  # type: ignore[method-assign]
    worker.run()
    assert statements == [(0, 5), (5, 5), (5, 2), (2, 0)]
    states = {job["state"] for job in minion.backend.list_jobs(0, 20, {"ids": ids})["jobs"]}
    assert states == {"finished"}
