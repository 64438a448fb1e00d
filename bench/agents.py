"""Processes the bench starts: ``python -m bench.agents ROLE DSN OPTIONS_JSON``.

``worker``
    One minion-daemon worker (the ``Worker`` every daemon worker process runs) with the bench
    tasks in ``mode`` (fork or inline; ``async``: the async tasks alone) and the given worker
    ``status`` (``jobs``, ``batch``, ``async_jobs``...), logging as the daemon does by default
    (JSON lines, level info, to stderr), until TERM; with ``tracing`` true, the OpenTelemetry
    SDK configured first. ``limits`` (``{task: {"concurrency": N, "rate": "N/PERIOD"}}``) gives
    tasks fleet-wide limits; a name that is no bench task becomes a no-op task of its own.
``enqueue``
    One client that enqueues ``noop`` jobs for ``seconds``: one per call, or ``many`` per
    ``enqueue_many`` call; with ``unique`` ``"new"`` each call with a key of its own (each
    creates a job), with ``"held"`` all with one key (after the first, each returns the job
    that holds it). It connects and warms up, prints ``ready``, starts at the ``go`` line on
    stdin (so concurrent clients overlap exactly), then prints ``{"jobs": N, "seconds": S}``.
``async_enqueue``
    The same with ``AsyncMinion.enqueue``, from ``tasks`` concurrent asyncio tasks of one
    process on one event loop (a connection each).
``peer``
    One drain by ``library`` (procrastinate or pgqueuer), as ``bench/peers.py`` says.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench import peers
from bench.tasks import ASYNC_TASKS, TASKS
from minion_daemon import AsyncMinion, Minion, logs
from minion_daemon.backend import PgBackend
from minion_daemon.backend.aio import AsyncPgBackend

WARMUP = 20


def _minion(dsn: str) -> Minion:
    return Minion(PgBackend(dsn, auto_migrate=False, application_name="minion-daemon-bench"))


def worker(dsn: str, options: dict[str, Any]) -> None:
    logs.configure("json", "info")
    if options.get("tracing"):
        _configure_tracing()
    minion = _minion(dsn)
    if options["mode"] == "async":
        for name, task in ASYNC_TASKS.items():
            minion.add_task(name, task)
    limits = options.get("limits", {})
    tasks = {**dict.fromkeys(limits, TASKS["noop"]), **TASKS} if options["mode"] != "async" else {}
    for name, task in tasks.items():
        minion.add_task(name, task, mode=options["mode"], **limits.get(name, {}))
    try:
        minion.worker(**options.get("status", {})).run()
    finally:
        minion.close()


def _configure_tracing() -> None:
    """The OpenTelemetry SDK as a tasks module would set it up, exporting nowhere: what the
    tracing phase measures is the SDK's own work per job."""
    # Imported here: a worker measured without tracing must not have OpenTelemetry imported.
    from opentelemetry import trace  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Discarding(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discarding()))
    trace.set_tracer_provider(provider)


def enqueue(dsn: str, options: dict[str, Any]) -> None:
    minion = _minion(dsn)
    many = int(options.get("many", 0))
    batch: list[tuple[str, list[Any] | None, dict[str, Any] | None]]
    batch = [("noop", None, None)] * many
    keys = _keys(options.get("unique"))

    def once() -> int:
        if many:
            minion.enqueue_many(batch)
            return many
        if keys is None:
            minion.enqueue("noop")
        else:
            minion.enqueue("noop", unique=next(keys))
        return 1

    for _ in range(WARMUP if not many else 2):
        once()
    print("ready", flush=True)
    sys.stdin.readline()
    jobs, started = 0, time.monotonic()
    deadline = started + float(options["seconds"])
    while time.monotonic() < deadline:
        jobs += once()
    print(json.dumps({"jobs": jobs, "seconds": time.monotonic() - started}), flush=True)
    minion.close()


def async_enqueue(dsn: str, options: dict[str, Any]) -> None:
    tasks = int(options["tasks"])
    asyncio.run(_async_enqueue(dsn, tasks, float(options["seconds"])))


async def _async_enqueue(dsn: str, tasks: int, seconds: float) -> None:
    backend = AsyncPgBackend(dsn, max_size=tasks)
    async with AsyncMinion(backend) as minion:

        async def enqueue_until(deadline: float) -> int:
            jobs = 0
            while time.monotonic() < deadline:
                await minion.enqueue("noop")
                jobs += 1
            return jobs

        await asyncio.gather(*(enqueue_until(time.monotonic() + 1) for _ in range(tasks)))
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        started = time.monotonic()
        counts = await asyncio.gather(
            *(enqueue_until(started + seconds) for _ in range(tasks))
        )
        elapsed = time.monotonic() - started
    print(json.dumps({"jobs": sum(counts), "seconds": elapsed}), flush=True)


def hooks(dsn: str, options: dict[str, Any]) -> None:
    """CPU microseconds per call of the tracing hooks, in this process, no database: a job's
    span around a task that does nothing (the job's notes carrying a trace context), and what
    ``enqueue`` adds, inside a span when tracing is on."""
    if options.get("tracing"):
        _configure_tracing()
    from minion_daemon import tracing  # noqa: PLC0415 - after the SDK, as a tasks module
    from minion_daemon.eager import EagerMinion  # noqa: PLC0415
    from minion_daemon.job import Job  # noqa: PLC0415

    job = Job(EagerMinion(), 1, [], 0, "noop", queue="default")  # type: ignore[arg-type]
    job.worker_id = 1
    job.trace_context = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    count = int(options["count"])

    def per_call(call: Any) -> float:
        call()  # the first call imports and caches what the others reuse
        started = time.process_time()
        for _ in range(count):
            call()
        return round((time.process_time() - started) * 1e6 / count, 2)

    def spanned() -> None:
        with tracing.job_span(job):
            pass

    figures = {"job_span_us": per_call(spanned)}
    if options.get("tracing"):
        from opentelemetry import trace  # noqa: PLC0415

        with trace.get_tracer("bench").start_as_current_span("enqueuer"):
            figures["enqueue_hook_us"] = per_call(lambda: tracing.with_context({}))
    else:
        figures["enqueue_hook_us"] = per_call(lambda: tracing.with_context({}))
    print(json.dumps(figures), flush=True)


def _keys(unique: str | None) -> Iterator[str] | None:
    """The ``unique`` keys of the calls: none, one per call, or one for all."""
    if unique is None:
        return None
    if unique == "held":
        return itertools.repeat("bench-held")
    return (f"bench-{os.getpid()}-{n}" for n in itertools.count())


def main() -> None:
    role, dsn, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    roles = {"worker": worker, "enqueue": enqueue, "async_enqueue": async_enqueue,
             "peer": peers.drain, "hooks": hooks}
    roles[role](dsn, options)


if __name__ == "__main__":
    main()
