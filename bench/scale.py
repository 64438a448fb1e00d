"""Scale: the dequeue+finish rate as the table grows, and the admin queries at a million rows.

The rate is one client claiming and finishing jobs through the backend (``dequeue`` then
``finish_job``, two commits per job, as a worker does) with 0, 100k and 1M ended jobs in the
table, and with 100k jobs waiting. The ended jobs are made by one INSERT ... SELECT per 100k
rows, spread over the last 47 hours (so Minion's 2-day retention keeps them all); after each
fill, VACUUM (ANALYZE) leaves the table as autovacuum would. The queries are timed at 1M
rows: the median of several calls after one unmeasured call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.context import Context
from bench.database import ENDED_JOBS, WAITING_JOBS
from bench.report import Row, at_least, at_most

WARMUP = 20


def fill_ended(ctx: Context, first: int, last: int) -> None:
    total, chunk = ctx.sizes.scale_rows, ctx.sizes.scale_chunk
    started = time.monotonic()
    for start in range(first + 1, last + 1, chunk):
        end = min(start + chunk - 1, last)
        ctx.main.execute(ENDED_JOBS, {"first": start, "last": end, "total": total})
        ctx.progress.say(f"  {end:,} of {total:,} ended jobs in the table")
    ctx.progress.say(f"  filled in {time.monotonic() - started:.1f} s; VACUUM (ANALYZE)...")
    ctx.main.vacuum_analyze()


def _dequeue_rate(ctx: Context, label: str, *, prefill: bool = True) -> float:
    """Jobs per second claimed and finished by one client, after a short warm-up."""
    jobs, backend = ctx.sizes.scale_jobs, ctx.minion.backend
    if prefill:
        ctx.minion.enqueue_many([("noop", None, None)] * (jobs + WARMUP))
        ctx.main.vacuum_analyze()
    ctx.main.execute("CHECKPOINT")
    worker = backend.register_worker()
    options = {"queues": ["default"], "tasks": ["noop"]}

    def one() -> None:
        job = backend.dequeue(worker, 0, options)
        if job is None:
            raise RuntimeError(f"dequeue rate, {label}: ran out of jobs")
        backend.finish_job(job["id"], job["retries"], None)

    for _ in range(WARMUP):
        one()
    started = time.perf_counter()
    for index in range(jobs):
        one()
        ctx.progress.every(f"  {label}: {index + 1}/{jobs} jobs")
    rate = jobs / (time.perf_counter() - started)
    backend.unregister_worker(worker)
    ctx.progress.say(f"  dequeue+finish, {label}: {rate:,.0f} jobs/s")
    return rate


def _median_ms(ctx: Context, name: str, call: Callable[[], Any]) -> float:
    call()
    times = []
    for _ in range(ctx.sizes.timing_repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    ctx.details.setdefault("timings_ms", {})[name] = times
    ctx.progress.say(f"  {name}: median {statistics.median(times):.1f} ms")
    return statistics.median(times)


def _observe_ms(ctx: Context, name: str) -> float:
    """The database time of one metrics round, as observe() itself measures it."""
    backend = ctx.minion.backend
    backend.observe(30)
    times = [backend.observe(30)["duration"] * 1000 for _ in range(ctx.sizes.timing_repeats)]
    ctx.details.setdefault("timings_ms", {})[name] = times
    ctx.progress.say(f"  {name}: median {statistics.median(times):.1f} ms")
    return statistics.median(times)


def _queries(ctx: Context, rows: str) -> list[Row]:
    minion, backend = ctx.minion, ctx.minion.backend
    handle = minion.job(ctx.sizes.scale_rows // 2)
    assert handle is not None
    timed: list[tuple[str, Callable[[], Any], float | None]] = [
        ("stats", minion.stats, 100),
        ("history", minion.history, 100),
        ("list_jobs first page (10)", lambda: backend.list_jobs(0, 10), 100),
        ("list_jobs first page, state finished",
         lambda: backend.list_jobs(0, 10, {"states": ["finished"]}), None),
        ("one job's info", lambda: handle.info, None),
        ("repair", minion.repair, None),
    ]
    result = []
    for name, call, limit in timed:
        value = _median_ms(ctx, f"{name} at {rows}", call)
        target = at_most(limit) if limit else None
        result.append(Row("scale", f"{name} at {rows}", value, "ms", target=target))
    observed = _observe_ms(ctx, f"observe() database time at {rows}")
    result.append(Row("scale", f"metrics round observe(), database time, at {rows}", observed,
                      "ms"))
    return result


def run(ctx: Context) -> list[Row]:
    sizes = ctx.sizes
    mid, total = f"{sizes.scale_mid_rows // 1000}k", rows_label(sizes.scale_rows)
    ctx.main.reset()
    ctx.progress.say("scale: dequeue+finish rate on an empty table")
    empty = _dequeue_rate(ctx, "empty table")
    rows = [Row("scale", "dequeue+finish, 1 client, empty table", empty, "jobs/s")]
    ctx.progress.say(f"scale: {mid} ended jobs")
    fill_ended(ctx, 0, sizes.scale_mid_rows)
    rate = _dequeue_rate(ctx, f"{mid} ended jobs")
    rows.append(Row("scale", f"dequeue+finish with {mid} ended jobs", rate, "jobs/s", empty,
                    "empty table"))
    ctx.progress.say(f"scale: {total} ended jobs")
    fill_ended(ctx, sizes.scale_mid_rows, sizes.scale_rows)
    rate = _dequeue_rate(ctx, f"{total} ended jobs")
    rows.append(Row("scale", f"dequeue+finish with {total} ended jobs", rate, "jobs/s", empty,
                    "empty table", at_least(0.8)))
    ctx.progress.say(f"scale: queries at {total} rows")
    rows.extend(_queries(ctx, f"{total} rows"))
    waiting = f"{sizes.scale_waiting // 1000}k"
    ctx.progress.say(f"scale: {waiting} jobs waiting")
    ctx.main.execute(WAITING_JOBS, {"count": sizes.scale_waiting})
    ctx.main.vacuum_analyze()
    rate = _dequeue_rate(ctx, f"{total} ended + {waiting} waiting", prefill=False)
    rows.append(Row("scale", f"dequeue+finish with {total} ended + {waiting} waiting", rate,
                    "jobs/s", empty, "empty table"))
    value = _median_ms(ctx, f"stats at {total} + {waiting} waiting", ctx.minion.stats)
    rows.append(Row("scale", f"stats at {total} rows + {waiting} waiting", value, "ms"))
    value = _observe_ms(ctx, f"observe() database time at {total} + {waiting} waiting")
    rows.append(Row("scale", f"metrics round observe(), database time, {total} + {waiting} "
                    "waiting", value, "ms"))
    return rows


def rows_label(count: int) -> str:
    return f"{count // 1_000_000}M" if count % 1_000_000 == 0 else f"{count // 1000}k"
