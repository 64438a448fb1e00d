"""Async mode (phase ``async``): coroutine tasks on one worker's event loop, and
``AsyncMinion.enqueue``.

* 1,000 jobs that each ``await asyncio.sleep(1)``, one worker, ``async_jobs`` 100: the span
  from the first claim to the last finish (10 s is the floor);
* no-op async jobs drained by one worker at ``async_jobs`` 4, 8 and 100, against one worker
  of procrastinate and of PgQueuer at the same concurrency (``bench/peers.py``; each where
  installed);
* ``AsyncMinion.enqueue`` from 1 and from 50 concurrent tasks of one process, against pgbench
  running the same INSERT with as many clients.
"""

from __future__ import annotations

import importlib.util
import json

from bench.context import Context
from bench.drain import Drain, drain
from bench.enqueue import baseline
from bench.processes import MachineCpu, start_agent, stop_all
from bench.report import Row, at_least, at_most

SLEEP_JOBS = 1000
SLEEP_CONCURRENCY = 100
CONCURRENCY = (4, 8, 100)
ENQUEUE_TASKS = (1, 50)


def _drain(ctx: Context, async_jobs: int, jobs: int, task: str) -> Drain:
    ctx.main.reset()
    worker = start_agent(ctx.workdir, f"async-{task}-{async_jobs}", "worker", ctx.main.dsn,
                         {"mode": "async", "status": {"async_jobs": async_jobs}})
    return drain(ctx, ctx.main, ctx.minion, [worker], jobs,
                 label=f"async {task}, async_jobs={async_jobs}", task=task)


def _enqueue(ctx: Context, tasks: int) -> tuple[float, float]:
    """AsyncMinion.enqueue's rate from ``tasks`` concurrent tasks, and CPU ms per job."""
    ctx.main.reset()
    agent = start_agent(ctx.workdir, f"async-enqueue-{tasks}", "async_enqueue", ctx.main.dsn,
                        {"seconds": ctx.sizes.enqueue_seconds, "tasks": tasks}, piped=True)
    try:
        assert agent.process.stdout is not None
        assert agent.process.stdin is not None
        if agent.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"async enqueue client did not start:\n{agent.tail()}")
        with MachineCpu() as cpu:
            agent.process.stdin.write("go\n")
            agent.process.stdin.flush()
            report = json.loads(agent.process.stdout.readline())
    finally:
        stop_all([agent])
    return report["jobs"] / report["seconds"], cpu.seconds * 1000 / report["jobs"]


PEERS = {"procrastinate": 1.5, "pgqueuer": 1.0}


def _peer(ctx: Context, library: str, concurrency: int, jobs: int) -> tuple[float | None, str]:
    """The peer's drain rate at ``concurrency``, or ``None`` and why not."""
    if importlib.util.find_spec(library) is None:
        return None, f"{library} not installed"
    options = {"library": library, "jobs": jobs, "concurrency": concurrency}
    agent = start_agent(ctx.workdir, f"peer-{library}-{concurrency}", "peer", ctx.main.dsn,
                        options, piped=True)
    try:
        assert agent.process.stdout is not None
        line = agent.process.stdout.readline()
        if not line:
            return None, f"{library} failed: {agent.tail(3)}"
        report = json.loads(line)
    finally:
        stop_all([agent])
    ctx.details.setdefault("peers", {})[f"{library}, concurrency {concurrency}"] = report
    return report["jobs"] / report["seconds"], f"{library}, 1 worker, concurrency {concurrency}"


def _noop_rows(ctx: Context, concurrency: int, jobs: int) -> list[Row]:
    ctx.progress.say(f"async: {jobs} no-op jobs, async_jobs={concurrency}")
    result = _drain(ctx, concurrency, jobs, "anoop")
    ctx.progress.say(f"  {result.rate:,.0f} jobs/s (CPU {result.worker_cpu_ms:.2f} ms/job "
                     f"in the worker, {result.machine_cpu_ms:.2f} in all)")
    extra = {"worker_cpu_ms_per_job": round(result.worker_cpu_ms, 3),
             "machine_cpu_ms_per_job": round(result.machine_cpu_ms, 3),
             "commits_per_job": result.commits}
    rows = []
    for library, target in PEERS.items():
        ctx.progress.say(f"async: {library}, {jobs} no-op jobs, concurrency {concurrency}")
        rate, name = _peer(ctx, library, concurrency, jobs)
        ctx.progress.say(f"  {rate:,.0f} jobs/s" if rate is not None else f"  {name}")
        rows.append(Row("async", f"no-op async jobs, 1 worker, async_jobs={concurrency}",
                        result.rate, "jobs/s", rate, name, at_least(target), extra=extra))
    return rows


def run(ctx: Context) -> list[Row]:
    ctx.progress.say(f"async: {SLEEP_JOBS} jobs of sleep(1), async_jobs={SLEEP_CONCURRENCY}")
    slept = _drain(ctx, SLEEP_CONCURRENCY, SLEEP_JOBS, "asleep")
    ctx.progress.say(f"  {slept.seconds:.2f} s")
    rows = [Row("async", f"{SLEEP_JOBS} jobs of await asyncio.sleep(1), async_jobs=100",
                slept.seconds, "s", target=at_most(12),
                extra={"worker_cpu_ms_per_job": round(slept.worker_cpu_ms, 3)})]
    for concurrency in CONCURRENCY:
        rows.extend(_noop_rows(ctx, concurrency, ctx.sizes.async_noop_jobs))
    for tasks in ENQUEUE_TASKS:
        base, base_cpu = None, None
        if ctx.pgbench:
            ctx.progress.say(f"async: pgbench INSERT, {tasks} client(s)")
            base, base_cpu = baseline(ctx, tasks)
            ctx.progress.say(f"  {base:,.0f} jobs/s")
        ctx.progress.say(f"async: AsyncMinion.enqueue, {tasks} task(s)")
        rate, cpu = _enqueue(ctx, tasks)
        ctx.progress.say(f"  {rate:,.0f} jobs/s (CPU {cpu:.2f} ms per job in all)")
        name = f"pgbench INSERT, {tasks} client(s)" if base else "pgbench not found"
        rows.append(Row("async", f"AsyncMinion.enqueue, {tasks} concurrent task(s)", rate,
                        "jobs/s", base, name, at_least(0.8),
                        extra={"machine_cpu_ms_per_job": cpu,
                               "pgbench_machine_cpu_ms_per_job": base_cpu}))
    return rows
