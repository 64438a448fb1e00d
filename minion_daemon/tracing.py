"""OpenTelemetry traces, when the program uses OpenTelemetry (docs/opentelemetry.md).

We never import OpenTelemetry ourselves: a program that has not imported its API can have no
span to follow and no provider to report to, so each hook first looks it up among the modules
already imported, and does nothing more when it is not there. That is the whole cost for a
program without it, installed or not.

The hooks:

* :func:`with_context` and :func:`many_with_context`, at enqueue: the current span's W3C
  trace context (``traceparent``, and ``tracestate`` when there is one) goes into the job's
  notes, plain notes to Perl; a worker's claim reads them back (backend/sql.py, ``_CLAIMED``)
  into :attr:`Job.trace_context <minion_daemon.job.Job.trace_context>`.
* :func:`job_span`, around the task in whatever process runs it: the span ``minion.job
  <task>``, a child of the span that enqueued the job, ended with how the task ended.
* :func:`killed`, in the worker, for a fork-mode job whose process was killed before it could
  end its span.
* :func:`prepare`, in the fork server before it forks jobs: what each job process would
  otherwise import anew.
* :func:`flush`, as a process forked by :func:`minion_daemon.proc.fork` leaves by
  ``os._exit`` (no atexit hooks): the spans the SDK still holds are exported first, within
  :data:`FLUSH_SECONDS`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from minion_daemon.outcome import Ending, verdict

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from minion_daemon.job import Job

#: How long a leaving process waits for its spans to be exported: its job's outcome is
#: recorded only once the process has ended, so a collector that does not answer must not
#: hold jobs for longer.
FLUSH_SECONDS: Final = 5.0
#: The instrumentation scope of the spans.
SCOPE: Final = "minion_daemon"

_API: Final = "opentelemetry.trace"
_Batch = Sequence[tuple[str, Sequence[Any] | None, dict[str, Any] | None]]
#: The provider a tracer was last made for, and that tracer.
_tracer: tuple[object, Tracer] | None = None


def context_notes() -> dict[str, str] | None:
    """The notes that carry the current span's context; ``None`` without a span."""
    trace = sys.modules.get(_API)
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


def with_context(options: dict[str, Any]) -> dict[str, Any]:
    """``enqueue``'s options, with the current span's context in their notes."""
    carrier = context_notes()
    return options if carrier is None else _noted(options, carrier)


def many_with_context(jobs: _Batch) -> _Batch:
    """``enqueue_many``'s jobs, with the current span's context in each one's notes."""
    carrier = context_notes()
    if carrier is None or not isinstance(jobs, Sequence) or isinstance(jobs, str | bytes):
        return jobs
    return [
        (job[0], job[1], _noted(job[2], carrier))
        if isinstance(job, tuple | list) and len(job) == 3
        else job
        for job in jobs
    ]


def _noted(options: object, carrier: dict[str, str]) -> Any:
    """Enqueue options whose notes also hold ``carrier``: notes the caller set win, and what
    is not a mapping is left for validation to refuse as it is."""
    if options is None:
        return {"notes": carrier}
    if not isinstance(options, Mapping):
        return options
    notes = options.get("notes")
    if notes is None:
        return {**options, "notes": carrier}
    if not isinstance(notes, Mapping):
        return options
    return {**options, "notes": {**carrier, **notes}}


def job_span(job: Job) -> _Untraced | JobSpan:
    """The span of ``job``'s run, as a context manager around the task: current inside it, so
    the task's own spans are its children; it records an exception that leaves it, and
    :meth:`JobSpan.fail` a failure that is not one. Without a configured tracer provider, a
    context manager that does nothing."""
    tracer = _configured_tracer()
    return _UNTRACED if tracer is None else JobSpan(tracer, job)


def prepare() -> None:
    """Before a process forks job processes: when the program uses OpenTelemetry, import what
    a job span needs and make the tracer here, once, rather than in every job process (the
    propagator's import alone took 4 ms of each one's CPU)."""
    if _configured_tracer() is not None:
        import opentelemetry.trace.propagation.tracecontext  # noqa: F401


def flush(timeout: float = FLUSH_SECONDS) -> None:
    """Export what the tracer provider holds, waiting ``timeout`` seconds at most (the SDK's
    batch processor ignores its own timeout, so the export runs in a thread of its own)."""
    trace = sys.modules.get(_API)
    if trace is None:
        return
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is None:
        return
    exporting = threading.Thread(
        target=force_flush, args=(int(timeout * 1000),), name="minion-span-flush", daemon=True
    )
    exporting.start()
    exporting.join(timeout)


def _configured_tracer() -> Tracer | None:
    """Our tracer from the provider the program set; ``None`` when it set none (the API's
    proxy and no-op providers record nothing)."""
    global _tracer  # noqa: PLW0603 - one tracer per provider, not one per job
    trace = sys.modules.get(_API)
    if trace is None:
        return None
    provider: TracerProvider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return None
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(SCOPE))
    return _tracer[1]


def killed(job: Job, ending: Ending, duration: float) -> None:
    """In the worker, once a fork-mode job's process ended: if a signal killed it before it
    ended its job's span (its timeout, a kill, a cancel), the span that process could not end,
    from ``duration`` seconds ago to now, ending as the worker records the job."""
    exit = ending.exit
    if exit is None or not exit.signal or ending.handed is not None or ending.recorded:
        return
    tracer = _configured_tracer()
    if tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode

    now = time.time_ns()
    span = _start(tracer, job, start_time=now - int(duration * 1e9))
    outcome = "killed" if ending.timed_out_after is None else "timed_out"
    span.set_attribute("minion.job.outcome", outcome)
    # The failure the worker records: a timeout's, or a kill's.
    span.set_status(Status(StatusCode.ERROR, str(verdict(ending).value)))
    span.end(end_time=now)


def _start(tracer: Tracer, job: Job, start_time: int | None = None) -> Span:
    """The span of ``job``'s run, started: a child of its enqueuer's when its notes carry a
    trace context (of the current span otherwise)."""
    from opentelemetry import trace

    parent = None
    if job.trace_context:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(job.trace_context)
    attributes: dict[str, str | int] = {
        "messaging.system": "minion",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.id": str(job.id),
        "minion.job.task": job.task,
        "minion.job.attempt": job.retries + 1,
    }
    if job.queue is not None:
        attributes["messaging.destination.name"] = job.queue
    if job.worker_id is not None:
        attributes["messaging.client.id"] = str(job.worker_id)
    return tracer.start_span(
        f"minion.job {job.task}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
        start_time=start_time,
    )


class _Untraced:
    """What :func:`job_span` gives without a tracer: nothing to do."""

    def __enter__(self) -> _Untraced:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def fail(self, error: str | None) -> None:
        """Nothing to record."""


_UNTRACED: Final = _Untraced()


class JobSpan:
    """The span of one job's run.

    Attributes follow OpenTelemetry's messaging conventions where they fit (the job is the
    message, its queue the destination, its worker the client) and are ``minion.job.*``
    where they do not; docs/opentelemetry.md lists them.
    """

    def __init__(self, tracer: Tracer, job: Job) -> None:
        self._tracer = tracer
        self._job = job
        self._failure: str | None = None

    def __enter__(self) -> JobSpan:
        from opentelemetry import context, trace

        self._span: Span = _start(self._tracer, self._job)
        self._token = context.attach(trace.set_span_in_context(self._span))
        return self

    def fail(self, error: str | None) -> None:
        """Take note that the job fails with ``error`` though the task raised nothing (its
        result cannot be stored); ``None`` is no failure."""
        self._failure = error

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        _: TracebackType | None,
    ) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span = self._span
        try:
            outcome, problem = self._outcome(error)
            span.set_attribute("minion.job.outcome", outcome)
            if error is not None:
                span.record_exception(error)
            if problem is not None:
                span.set_status(Status(StatusCode.ERROR, problem))
        finally:
            span.end()
            context.detach(self._token)

    def _outcome(self, error: BaseException | None) -> tuple[str, str | None]:
        """How the task ended, as ``minion.job.outcome`` says it, and the error status's
        description (``None``: not an error)."""
        job = self._job
        if isinstance(error, SystemExit):
            return "exited", None if error.code in (None, 0) else f"exit({error.code})"
        if error is not None:
            described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            return ("failed" if isinstance(error, Exception) else "interrupted"), described
        if self._failure is not None:
            return "failed", self._failure.splitlines()[0]
        if job.outcome is not None:
            return job.outcome, None if job.outcome == "finished" else job.failure
        return "finished", None
