"""Run one worker of traced tasks until the queue is empty: python traced_worker.py DSN SPANS
STATUS_JSON.

With SPANS a directory, the OpenTelemetry SDK is configured here, at import, as a program's
tasks module would: a batch processor that exports only when flushed (its delay is an hour),
into a file per process in SPANS, so that the spans of a fork-mode job reach the test only if
its job process flushed them before it left. With SPANS ``-`` nothing is configured.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from minion_daemon import Job, Minion, tracing
from minion_daemon.backend import PgBackend

TASKS_TRACER = "tests.traced_tasks"


class FileSpanExporter(SpanExporter):
    """Finished spans as JSON lines in ``<directory>/<pid>.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with (self.directory / f"{os.getpid()}.jsonl").open("a") as out:
            for span in spans:
                out.write(json.dumps({"pid": os.getpid(), **json.loads(span.to_json())}) + "\n")
        return SpanExportResult.SUCCESS


def configure(directory: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(FileSpanExporter(directory), schedule_delay_millis=3_600_000)
    )
    trace.set_tracer_provider(provider)


def traced(job: Job, value: Any) -> Any:
    """Returns its argument, inside a span of its own (a child of the job's)."""
    with trace.get_tracer(TASKS_TRACER).start_as_current_span("inside the task"):
        return value


def failing(job: Job, message: str) -> None:
    raise ValueError(message)


def main() -> None:
    dsn, spans, status = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if spans != "-":
        configure(Path(spans))
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    minion.add_task("traced", traced)
    minion.add_task("traced_inline", traced, mode="inline")
    # Retried at once, so that a run sees its second attempt.
    minion.add_task("failing", failing, backoff=lambda _: 0)
    minion.add_task("failing_inline", failing, mode="inline")
    worker = minion.worker(**status)
    worker.on("wait", lambda _: _stop_when_drained(minion))
    worker.run()
    minion.close()
    # A daemon's worker process leaves through proc.fork, which flushes; this one is a script.
    tracing.flush()


def _stop_when_drained(minion: Minion) -> None:
    stats = minion.stats()
    if stats["inactive_jobs"] == 0 and stats["active_jobs"] == 0:
        os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
