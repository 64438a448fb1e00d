"""How a job's span ends (minion_daemon/tracing.py), with the SDK's in-memory exporter.

Each test makes spans through a tracer provider of its own, never the global one; the spans
of real jobs across a fork are tests/integration/test_tracing.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, get_current_span

from minion_daemon import tracing
from minion_daemon.eager import EagerMinion
from minion_daemon.job import Job
from minion_daemon.minion import Minion

Run = Callable[..., ReadableSpan]


@pytest.fixture
def run() -> Iterator[Run]:
    """``run(body)``: ``body(job, span)`` inside a job's span; the span it exported."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")

    def running(
        body: Callable[[Job, tracing.JobSpan], object], trace_context: dict[str, str] | None = None
    ) -> ReadableSpan:
        job = Job(cast("Minion", EagerMinion()), 42, [], 2, "a_task", queue="q")
        job.worker_id = 7
        job.trace_context = trace_context or {}
        try:
            with tracing.JobSpan(tracer, job) as span:
                body(job, span)
        except BaseException:  # noqa: BLE001, S110 - the test looks at the span alone
            pass
        (finished,) = exporter.get_finished_spans()
        return finished

    yield running
    provider.shutdown()


def _outcome(span: ReadableSpan) -> Any:
    assert span.attributes is not None
    return span.attributes["minion.job.outcome"]


def test_a_task_that_returns_finishes_its_span_without_error(run: Run) -> None:
    span = run(lambda job, _: None)
    assert span.name == "minion.job a_task"
    assert dict(span.attributes or {}) == {
        "messaging.system": "minion",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.id": "42",
        "messaging.destination.name": "q",
        "messaging.client.id": "7",
        "minion.job.task": "a_task",
        "minion.job.attempt": 3,
        "minion.job.outcome": "finished",
    }
    assert span.status.status_code == StatusCode.UNSET


def test_the_span_is_current_inside_the_task(run: Run) -> None:
    seen: list[int] = []
    span = run(lambda job, _: seen.append(get_current_span().get_span_context().span_id))
    assert span.context is not None
    assert seen == [span.context.span_id]
    assert not get_current_span().get_span_context().is_valid  # and no longer after


def test_the_enqueuers_context_is_the_parent(run: Run) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    span = run(lambda job, _: None, {"traceparent": parent})
    assert span.parent is not None
    assert (span.parent.trace_id, span.parent.span_id, span.parent.is_remote) == (
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        True,
    )


def test_a_traceparent_note_that_is_no_trace_context_starts_a_trace(run: Run) -> None:
    """Notes are anyone's to write (Perl's, a person's): one that does not parse is ignored."""
    span = run(lambda job, _: None, {"traceparent": "not a trace context"})
    assert span.parent is None
    assert _outcome(span) == "finished"


def _raise(error: BaseException) -> Callable[[Job, tracing.JobSpan], object]:
    def body(job: Job, span: tracing.JobSpan) -> None:
        raise error

    return body


@pytest.mark.parametrize(
    ("error", "outcome", "description"),
    [
        (ValueError("no"), "failed", "ValueError: no"),
        (KeyboardInterrupt(), "interrupted", "KeyboardInterrupt"),
        (SystemExit(3), "exited", "exit(3)"),
    ],
)
def test_an_exception_leaving_the_task_is_recorded(
    run: Run, error: BaseException, outcome: str, description: str
) -> None:
    span = run(_raise(error))
    assert _outcome(span) == outcome
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == description
    assert [event.name for event in span.events] == ["exception"]


def test_sys_exit_0_is_no_error(run: Run) -> None:
    span = run(_raise(SystemExit(0)))
    assert _outcome(span) == "exited"
    assert span.status.status_code == StatusCode.UNSET


def test_a_failure_that_is_no_exception_is_an_error(run: Run) -> None:
    span = run(lambda job, span: span.fail("Result cannot be stored as JSON: it\nmore"))
    assert _outcome(span) == "failed"
    assert span.status.description == "Result cannot be stored as JSON: it"
    assert span.events == ()


def test_what_the_task_recorded_itself_is_its_outcome(run: Run) -> None:
    def retried(job: Job, span: tracing.JobSpan) -> None:
        job.outcome, job.failure = "retried", "try later"

    span = run(retried)
    assert _outcome(span) == "retried"
    assert span.status.description == "try later"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, {"notes": {"traceparent": "t"}}),
        ({"queue": "q"}, {"queue": "q", "notes": {"traceparent": "t"}}),
        ({"notes": {"a": 1}}, {"notes": {"traceparent": "t", "a": 1}}),
        ({"notes": {"traceparent": "mine"}}, {"notes": {"traceparent": "mine"}}),
        ({"notes": "not a mapping"}, {"notes": "not a mapping"}),  # for validation to refuse
        ("not a mapping", "not a mapping"),
    ],
)
def test_the_context_joins_the_notes_the_caller_gave(options: object, expected: object) -> None:
    assert tracing._noted(options, {"traceparent": "t"}) == expected


def test_without_a_span_options_are_left_as_they_are() -> None:
    options = {"notes": {"a": 1}}
    assert tracing.with_context(options) is options
    jobs = [("task", None, None)]
    assert tracing.many_with_context(jobs) is jobs
