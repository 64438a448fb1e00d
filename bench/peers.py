"""The async-first peers, drained as ``bench.coroutines`` drains ours: the agent ``peer``
(bench/agents.py) with ``{"library": L, "jobs": N, "concurrency": C}`` enqueues N no-op async jobs
(in one batch), then times one worker of ``procrastinate`` or ``pgqueuer`` at concurrency C
draining them, and prints ``{"jobs": N, "seconds": S, "wall": W}``: S is the span its own
event log records from the first job started to the last one done, as ours is timed from
``started`` to ``finished``; W the worker's whole run, start-up and its noticing the empty
queue included. Each keeps its own tables beside Minion's, emptied first.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import psycopg


async def _prepared(dsn: str, table: str, tables: str) -> bool:
    """Whether ``table`` exists; its library's ``tables`` are emptied if so."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        found = await (await conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table])).fetchone()
        if found and found[0]:
            await conn.execute(f"TRUNCATE {tables}")
            return True
    return False


#: Each library's span of a drain, from its own event log.
_SPANS = {
    "procrastinate": """SELECT EXTRACT(EPOCH FROM MAX(at) FILTER (WHERE type = 'succeeded')
        - MIN(at) FILTER (WHERE type = 'started'))::float8 FROM procrastinate_events""",
    "pgqueuer": """SELECT EXTRACT(EPOCH FROM MAX(created) FILTER (WHERE status = 'successful')
        - MIN(created) FILTER (WHERE status = 'picked'))::float8 FROM pgqueuer_log""",
}


async def _span(dsn: str, library: str) -> float:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        row = await (await conn.execute(_SPANS[library])).fetchone()
    assert row is not None
    return float(row[0])


async def procrastinate(dsn: str, jobs: int, concurrency: int) -> float:
    import procrastinate as library  # noqa: PLC0415 - a bench extra, imported when measured

    app = library.App(connector=library.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    installed = await _prepared(dsn, "procrastinate_jobs", "procrastinate_jobs CASCADE")
    async with app.open_async():
        if not installed:
            await app.schema_manager.apply_schema_async()
        await noop.batch_defer_async(*({} for _ in range(jobs)))
        started = time.monotonic()
        await app.run_worker_async(
            concurrency=concurrency, wait=False, install_signal_handlers=False
        )
        return time.monotonic() - started


async def pgqueuer(dsn: str, jobs: int, concurrency: int) -> float:
    from pgqueuer import PsycopgDriver, Queries, QueueManager  # noqa: PLC0415 - as above
    from pgqueuer.types import QueueExecutionMode  # noqa: PLC0415

    installed = await _prepared(dsn, "pgqueuer", "pgqueuer, pgqueuer_log, pgqueuer_statistics")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        driver = PsycopgDriver(conn)
        queries = Queries(driver)
        if not installed:
            await queries.install()
        await queries.enqueue(["noop"] * jobs, [None] * jobs, [0] * jobs)
        manager = QueueManager(queries)

        @manager.entrypoint("noop")
        async def noop(job: Any) -> None:
            return None

        started = time.monotonic()
        # Its hard cap on picked jobs must be at least twice its batch.
        await manager.run(
            mode=QueueExecutionMode.drain,
            batch_size=max(1, concurrency // 2),
            max_concurrent_tasks=concurrency,
        )
        return time.monotonic() - started


def drain(dsn: str, options: dict[str, Any]) -> None:
    library = options["library"]
    run = {"procrastinate": procrastinate, "pgqueuer": pgqueuer}[library]
    jobs = int(options["jobs"])
    wall = asyncio.run(run(dsn, jobs, int(options["concurrency"])))
    seconds = asyncio.run(_span(dsn, library))
    print(json.dumps({"jobs": jobs, "seconds": seconds, "wall": wall}), flush=True)
