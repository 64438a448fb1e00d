"""Admin: each admin UI page's server time at a million jobs.

The table is scale's: 1M ended jobs over the last 47 hours (one in 250 failed), then 10k jobs
waiting, a few workers and locks. Each page is rendered through the WSGI application itself
(Werkzeug's test client, no HTTP), read-only: the median of 15 renders after one unmeasured
render. The issue's goal is 100 ms a page.
"""

from __future__ import annotations

import statistics
import time

from werkzeug.test import Client

from bench.context import Context
from bench.database import WAITING_JOBS
from bench.report import Row, at_most
from bench.scale import fill_ended, rows_label
from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials

PAGE_GOAL_MS = 100
#: Renders per page (after one unmeasured): a page takes milliseconds, and a median of many
#: resists the other work of a shared machine.
REPEATS = 15
WAITING = 10_000


def _pages(total: int) -> list[tuple[str, str]]:
    middle = total // 2
    return [
        ("dashboard", "/"),
        ("stats JSON", "/stats"),
        ("queues", "/queues"),
        ("jobs, newest 25", "/jobs"),
        ("jobs, state finished", "/jobs?state=finished"),
        ("jobs, state failed", "/jobs?state=failed"),
        ("jobs, task noop, older page", f"/jobs?task=noop&before={middle}"),
        ("one job", f"/jobs/{middle}"),
        ("workers", "/workers"),
        ("locks", "/locks"),
        ("schedules", "/schedules"),
    ]


def _render_ms(ctx: Context, client: Client, path: str) -> float:
    response = client.get(path)
    if response.status_code != 200:
        raise RuntimeError(f"admin page {path}: HTTP {response.status_code}")
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        client.get(path).close()
        times.append((time.perf_counter() - started) * 1000)
    ctx.details.setdefault("admin_ms", {})[path] = times
    return statistics.median(times)


def run(ctx: Context) -> list[Row]:
    total = ctx.sizes.scale_rows
    label = rows_label(total)
    backend = ctx.minion.backend
    ctx.main.reset()
    ctx.progress.say(f"admin: {label} ended jobs, {WAITING:,} waiting")
    ctx.main.execute(WAITING_JOBS, {"count": WAITING})
    fill_ended(ctx, 0, total)
    workers = [backend.register_worker() for _ in range(8)]
    for index in range(20):
        backend.lock(f"bench-lock-{index}", 3600)
    app = AdminApp(backend, Credentials.from_config(None), b"b" * 32)
    client = Client(app)
    rows = []
    for name, path in _pages(total):
        value = _render_ms(ctx, client, path)
        ctx.progress.say(f"  {name} ({path}): median {value:.1f} ms")
        rows.append(Row("admin", f"admin page {name} at {label} jobs", value, "ms",
                        target=at_most(PAGE_GOAL_MS)))
    for worker in workers:
        backend.unregister_worker(worker)
    return rows
