"""Traces through the real daemon: the SDK configured by a tasks module, spans from a fork-mode
job process and from an inline job in a worker process, both of which leave by ``os._exit``:
the spans reach the exporter only because each process flushes as it leaves."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from helpers.daemon import add_distribution
from helpers.traced_tasks import SPANS_VARIABLE, read_spans
from opentelemetry.sdk.trace import TracerProvider

from minion_daemon import Minion


@pytest.fixture
def task_path(tmp_path: Path) -> Path:
    """The traced tasks as an installed distribution's entry points."""
    points = dict.fromkeys(("traced", "traced_inline"), "helpers.traced_tasks:traced")
    (tmp_path / "dist").mkdir()
    return add_distribution(tmp_path / "dist", "traced-test-tasks", points)


def test_jobs_of_the_daemon_run_in_child_spans_of_their_enqueuer(
    start: object, minion: Minion, tmp_path: Path
) -> None:
    spans_dir = tmp_path / "spans"
    spans_dir.mkdir()
    tracer = TracerProvider().get_tracer("tests.enqueuer")
    with tracer.start_as_current_span("a request") as request:
        ids = [minion.enqueue("traced", [1]), minion.enqueue("traced_inline", [2])]
    daemon, _ = start(  # type: ignore[operator]
        {SPANS_VARIABLE: str(spans_dir)},
        workers={"processes": 1, "tasks": {"traced_inline": {"mode": "inline"}}},
    )
    for job_id in ids:
        info = minion.result(job_id, timeout=30)
        assert info is not None
        assert info["state"] == "finished", info
    daemon.signal(signal.SIGTERM)
    code, log = daemon.finish()
    assert code == 0, log

    spans = {
        span["attributes"]["messaging.message.id"]: span
        for span in read_spans(spans_dir)
        if span["name"].startswith("minion.job ")
    }
    enqueuer = request.get_span_context()
    for job_id in ids:
        span = spans[str(job_id)]
        assert span["context"]["trace_id"] == f"0x{enqueuer.trace_id:032x}"
        assert span["parent_id"] == f"0x{enqueuer.span_id:016x}"
        assert span["attributes"]["minion.job.outcome"] == "finished"
    fork_job = minion.job(ids[0])
    assert fork_job is not None
    info = fork_job.info
    assert info is not None
    assert spans[str(ids[0])]["pid"] == info["notes"]["minion_pid"]  # the job process
    assert spans[str(ids[1])]["pid"] != spans[str(ids[0])]["pid"]  # the worker process
