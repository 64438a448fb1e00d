"""OpenTelemetry traces (minion_daemon/tracing.py, docs/opentelemetry.md) with the real SDK.

The test process enqueues inside a span of a tracer provider of its own (not the global one,
which would stay set for the other tests of this process); ``helpers/traced_worker.py`` runs
a worker as a subprocess with the SDK configured as a tasks module would, exporting only when
flushed, into a file per process: fork-mode spans reach the test from the job processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.traced_tasks import read_spans
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, TraceState

from minion_daemon import Minion
from minion_daemon.backend import PgBackend

TESTS = Path(__file__).resolve().parents[1]
TRACED_WORKER = TESTS / "helpers" / "traced_worker.py"
RUN_TIMEOUT = 60.0


@pytest.fixture
def request_span() -> Iterator[Span]:
    """The enqueuer's span, current inside the test."""
    tracer = TracerProvider().get_tracer("tests.enqueuer")
    with tracer.start_as_current_span("a request") as span:
        yield span


def _traceparent(span: Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _run_worker(dsn: str, spans: Path | None, **status: Any) -> list[dict[str, Any]]:
    """Run the traced worker until the queue is empty; the spans it exported."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    where = "-" if spans is None else str(spans)
    done = subprocess.run(
        [sys.executable, str(TRACED_WORKER), dsn, where, json.dumps(status)],
        env=env,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return [] if spans is None else read_spans(spans)


def _job_spans(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The job spans by job id, the last attempt's of each job."""
    runs = sorted(
        (span for span in spans if span["name"].startswith("minion.job ")),
        key=lambda span: span["attributes"]["minion.job.attempt"],
    )
    return {span["attributes"]["messaging.message.id"]: span for span in runs}


def test_a_fork_mode_job_runs_in_a_child_span_of_its_enqueuer(
    minion: Minion, dsn: str, tmp_path: Path, request_span: Span
) -> None:
    job_id = minion.enqueue("traced", [7], queue="default")
    spans = _run_worker(dsn, tmp_path)

    span = _job_spans(spans)[str(job_id)]
    enqueuer = request_span.get_span_context()
    assert span["name"] == "minion.job traced"
    assert span["kind"] == "SpanKind.CONSUMER"
    assert span["context"]["trace_id"] == f"0x{enqueuer.trace_id:032x}"
    assert span["parent_id"] == f"0x{enqueuer.span_id:016x}"
    assert span["status"]["status_code"] == "UNSET"
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert span["attributes"] == {
        "messaging.system": "minion",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.id": str(job_id),
        "messaging.destination.name": "default",
        "messaging.client.id": str(info["worker"]),
        "minion.job.task": "traced",
        "minion.job.attempt": 1,
        "minion.job.outcome": "finished",
    }
    # Made and exported by the job process, whose own spans are the job span's children.
    assert span["pid"] == info["notes"]["minion_pid"]
    inside = next(other for other in spans if other["name"] == "inside the task")
    assert inside["parent_id"] == span["context"]["span_id"]
    assert inside["pid"] == span["pid"]


def test_the_trace_context_is_a_plain_note(minion: Minion, request_span: Span) -> None:
    job_id = minion.enqueue("traced", [1])
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert info["notes"] == {"traceparent": _traceparent(request_span)}


def test_enqueue_many_and_the_callers_connection_record_it_too(
    minion: Minion, dsn: str, request_span: Span
) -> None:
    import psycopg

    ids = minion.enqueue_many([("traced", [1], None), ("traced", [2], {"notes": {"a": 1}})])
    with psycopg.connect(dsn) as conn:
        ids.append(minion.enqueue("traced", [3], conn=conn, notes={"traceparent": "mine"}))
    notes = {job["id"]: job["notes"] for job in minion.jobs()}
    expected = _traceparent(request_span)
    assert notes == {
        ids[0]: {"traceparent": expected},
        ids[1]: {"traceparent": expected, "a": 1},
        ids[2]: {"traceparent": "mine"},  # the caller's own note wins
    }


def test_inline_and_batched_jobs_and_failures_have_their_spans(
    minion: Minion, dsn: str, tmp_path: Path, request_span: Span
) -> None:
    inline = [minion.enqueue("traced_inline", [n]) for n in range(3)]
    failed = minion.enqueue("failing", ["boom in a job process"], attempts=2)
    failed_inline = minion.enqueue("failing_inline", ["boom inline"])
    spans = _job_spans(_run_worker(dsn, tmp_path, batch=4))

    enqueuer = request_span.get_span_context()
    for job_id in (*inline, failed, failed_inline):
        span = spans[str(job_id)]
        assert span["context"]["trace_id"] == f"0x{enqueuer.trace_id:032x}"
        assert span["parent_id"] == f"0x{enqueuer.span_id:016x}"
    assert {spans[str(job_id)]["attributes"]["minion.job.outcome"] for job_id in inline} == {
        "finished"
    }
    # Attempts counted: the failing job ran twice, each run a span of its own.
    assert spans[str(failed)]["attributes"]["minion.job.attempt"] == 2
    for job_id, message in ((failed, "boom in a job process"), (failed_inline, "boom inline")):
        span = spans[str(job_id)]
        assert span["attributes"]["minion.job.outcome"] == "failed"
        assert span["status"] == {"status_code": "ERROR", "description": f"ValueError: {message}"}
        (event,) = span["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "ValueError"
        assert event["attributes"]["exception.message"] == message
    assert minion.job(failed).info["state"] == "failed"  # type: ignore[union-attr]


def test_without_a_configured_sdk_nothing_is_recorded_and_jobs_run(
    minion: Minion, dsn: str, tmp_path: Path, request_span: Span
) -> None:
    ids = [minion.enqueue("traced", [1]), minion.enqueue("traced_inline", [2])]
    assert _run_worker(dsn, None) == []
    assert list(tmp_path.glob("*.jsonl")) == []
    assert [minion.job(job_id).info["state"] for job_id in ids] == ["finished"] * 2  # type: ignore[union-attr]


BLOCKED = """
import sys
sys.modules["opentelemetry"] = None  # what `import opentelemetry` then raises ImportError for
from minion_daemon import Minion
from minion_daemon.backend import PgBackend

def task(job, value):
    return value

minion = Minion(PgBackend(sys.argv[1], min_size=0))
minion.add_task("fork", task)
minion.add_task("inline", task, mode="inline")
ids = [minion.enqueue("fork", [1]), minion.enqueue("inline", [2])]
ids += minion.enqueue_many([("fork", [3], None)])
minion.perform_jobs()
infos = [minion.job(job_id).info for job_id in ids]
print([(info["state"], sorted(info["notes"])) for info in infos])
"""


def test_without_opentelemetry_importable_jobs_run_and_get_no_note(dsn: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, dsn],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # Fork-mode jobs note their process's pid; nothing else.
    expected = [("finished", ["minion_pid"]), ("finished", []), ("finished", ["minion_pid"])]
    assert done.stdout.strip() == str(expected)


def test_a_job_enqueued_outside_any_span_runs_in_a_root_span(
    minion: Minion, dsn: str, tmp_path: Path
) -> None:
    job_id = minion.enqueue("traced", [1])
    span = _job_spans(_run_worker(dsn, tmp_path))[str(job_id)]
    assert span["parent_id"] is None
    assert list(minion.job(job_id).info["notes"]) == ["minion_pid"]  # type: ignore[union-attr]


def test_the_claim_carries_the_context_of_the_jobs_that_have_one(dsn: str) -> None:
    backend = PgBackend(dsn, min_size=0)
    try:
        first = backend.enqueue("traced", [1], {"notes": {"traceparent": "00-x", "other": 1}})
        second = backend.enqueue("traced", [2])
        worker = backend.register_worker()
        claimed = {job["id"]: job["trace_context"] for job in backend.dequeue_many(worker, 0, 2)}
    finally:
        backend.close()
    assert claimed == {first: {"traceparent": "00-x"}, second: None}


def test_a_trace_state_travels_with_the_job(minion: Minion, dsn: str, tmp_path: Path) -> None:
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    with trace.use_span(NonRecordingSpan(remote)):
        job_id = minion.enqueue("traced_inline", [1])
    notes = minion.job(job_id).info["notes"]  # type: ignore[union-attr]
    assert notes == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=value",
    }
    span = _job_spans(_run_worker(dsn, tmp_path))[str(job_id)]
    assert span["parent_id"] == "0xb7ad6b7169203331"
    assert span["context"]["trace_state"] == "['{key=vendor, value=value}']"  # SDK's JSON


def test_a_job_process_killed_at_its_timeout_gets_its_span_from_the_worker(
    minion: Minion, dsn: str, tmp_path: Path, request_span: Span
) -> None:
    """Its own span never ended (TERM, then KILL, at its 0.5 s timeout)."""
    job_id = minion.enqueue("sleeping", [30])
    spans = _run_worker(dsn, tmp_path)
    (span,) = (span for span in spans if span["name"] == "minion.job sleeping")
    enqueuer = request_span.get_span_context()
    assert span["parent_id"] == f"0x{enqueuer.span_id:016x}"
    assert span["attributes"]["minion.job.outcome"] == "timed_out"
    assert span["status"] == {
        "status_code": "ERROR",
        "description": "Job timed out after 0.5 seconds",
    }
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert span["pid"] != info["notes"]["minion_pid"]  # the worker made it
    assert info["state"] == "failed"


STUCK_EXPORT = """
import threading
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from minion_daemon import tracing

class Stuck(SpanProcessor):
    def force_flush(self, timeout_millis=30000):
        threading.Event().wait()  # a collector that never answers
        return True

provider = TracerProvider()
provider.add_span_processor(Stuck())
trace.set_tracer_provider(provider)
tracing.flush(0.2)
print("left")
"""


def test_a_process_leaves_even_when_its_spans_cannot_be_exported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STUCK_EXPORT],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
        text=True,
    )
    assert (done.returncode, done.stdout) == (0, "left\n"), done.stderr
