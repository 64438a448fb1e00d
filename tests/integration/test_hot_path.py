"""What the worker's hot path relies on: sessions without JIT, the cheap pid note, prepared
claims that still honour every filter, and one log line per batch."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from minion_daemon import Job, Minion, logs
from minion_daemon.backend import PgBackend
from minion_daemon.runners import Ended


@pytest.fixture
def minion(backend: PgBackend) -> Minion:
    return Minion(backend)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


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


def test_the_pid_note_merges_into_the_notes_and_checks_its_arguments(backend: PgBackend) -> None:
    job_id = backend.enqueue("noop", [], {"notes": {"kept": [1, 2]}})
    assert backend.note_pid(job_id, 4242)
    [job] = backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"]
    assert job["notes"] == {"kept": [1, 2], "minion_pid": 4242}
    assert not backend.note_pid(job_id + 1000, 4242), "no such job"
    with pytest.raises(ValueError, match="note_pid: pid"):
        backend.note_pid(job_id, 0)


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
