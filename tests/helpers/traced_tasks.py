"""Tasks that make spans, and the OpenTelemetry SDK configured as a program's tasks module
would configure it: at import, when ``$MINION_TEST_SPANS`` names a directory.

The batch processor exports only when flushed (its delay is an hour), into a file per process
in that directory, so that a span reaches the test only if the process that made it flushed
before it left (a fork-mode job process, a worker process: both leave by ``os._exit``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from minion_daemon import Job

SPANS_VARIABLE = "MINION_TEST_SPANS"


class FileSpanExporter(SpanExporter):
    """Finished spans as JSON lines in ``<directory>/<pid>.jsonl``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with (self.directory / f"{os.getpid()}.jsonl").open("a") as out:
            for span in spans:
                out.write(json.dumps({"pid": os.getpid(), **json.loads(span.to_json())}) + "\n")
        return SpanExportResult.SUCCESS


def read_spans(directory: Path) -> list[dict[str, Any]]:
    """What the processes exported into ``directory``."""
    lines = [line for path in directory.glob("*.jsonl") for line in path.read_text().splitlines()]
    return [json.loads(line) for line in lines]


def configure(directory: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(FileSpanExporter(directory), schedule_delay_millis=3_600_000)
    )
    trace.set_tracer_provider(provider)


def traced(job: Job, value: Any) -> Any:
    """Returns its argument, inside a span of its own (a child of the job's)."""
    with trace.get_tracer("tests.traced_tasks").start_as_current_span("inside the task"):
        return value


def failing(job: Job, message: str) -> None:
    raise ValueError(message)


def sleeping(job: Job, seconds: float) -> None:
    time.sleep(seconds)


if os.environ.get(SPANS_VARIABLE):
    configure(Path(os.environ[SPANS_VARIABLE]))
