"""Fleet control's cost to the claim (issue 17): inline workers draining no-op jobs plainly,
and with a paused queue and fleet-wide limits in force, in alternating rounds.

Both start with the same jobs waiting that the workers must not take: 100 in the queue
``bench_paused``, and 100 each of the tasks ``limited`` and ``rated`` at a higher priority
than the no-ops (so every claim passes them over, as it would in production). Plain, the
workers neither watch that queue nor offer those tasks. In force, they watch the queue, which
is paused, and offer both tasks, whose limits are full (the bench holds the only slot of
``limited``, concurrency 1, and the only start of ``rated``, rate 1/1m), so each worker is
refused a job of each about once a second, gives it back, and claims no-ops meanwhile. The
goal: the no-ops' rate in force at least 0.9x the plain one. Beside it, without a goal: no-ops
whose own task has a concurrency limit (1000, never reached), which costs each job a hold
taken and given back.
"""

from __future__ import annotations

import statistics
from typing import Any

from bench.context import Context
from bench.drain import Drain, drain
from bench.processes import start_agent
from bench.report import Row, at_least
from minion_daemon.limits import concurrency_lock, rate_lock

WORKERS = 2
PAUSED_QUEUE = "bench_paused"
#: Jobs left waiting in force: in the paused queue, and of each saturated task.
WAITING = 100
IN_FORCE: dict[str, Any] = {
    "status": {"jobs": 4, "queues": ["default", PAUSED_QUEUE]},
    "limits": {"limited": {"concurrency": 1}, "rated": {"rate": "1/1m"}},
}
PLAIN: dict[str, Any] = {"status": {"jobs": 4}}
LIMITED_NOOP: dict[str, Any] = {"status": {"jobs": 4}, "limits": {"noop": {"concurrency": 1000}}}


def _fill(ctx: Context, *, in_force: bool) -> None:
    """The jobs the workers must not take; in force, the paused queue and the full limits."""
    minion = ctx.minion
    minion.enqueue_many([("stamp", None, {"queue": PAUSED_QUEUE})] * WAITING)
    for task in ("limited", "rated"):
        minion.enqueue_many([(task, None, {"priority": 1})] * WAITING)
    if in_force:
        minion.pause_queue(PAUSED_QUEUE)
        minion.backend.lock(concurrency_lock("limited"), 3600, {"limit": 1})
        minion.backend.lock(rate_lock("rated"), 3600, {"limit": 1})


def _drain(ctx: Context, label: str, options: dict[str, Any], *, in_force: bool) -> Drain:
    ctx.main.reset()
    ctx.minion.resume_queue(PAUSED_QUEUE)
    _fill(ctx, in_force=in_force)
    workers = [
        start_agent(ctx.workdir, f"fleet-{label}-{index}", "worker", ctx.main.dsn,
                    {"mode": "inline", **options})
        for index in range(WORKERS)
    ]
    result = drain(ctx, ctx.main, ctx.minion, workers, _jobs(ctx), label=label, only_noops=True)
    ctx.progress.say(f"  {label}: {result.rate:,.0f} jobs/s, CPU {result.worker_cpu_ms:.2f} ms"
                     " per job in the workers")
    return result


def _jobs(ctx: Context) -> int:
    """Half throughput's inline drain: twice the rounds in the same time, as a shared
    machine's load changes from one 10 s to the next."""
    return ctx.sizes.inline_jobs // 2


def run(ctx: Context) -> list[Row]:
    kinds = {
        "plain": (PLAIN, False),
        "paused queue and limits in force": (IN_FORCE, True),
        "no-ops limited (concurrency 1000)": (LIMITED_NOOP, False),
    }
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpus: dict[str, list[float]] = {kind: [] for kind in kinds}
    rounds = 2 * ctx.sizes.timing_repeats + 1
    for number in range(1, rounds + 1):
        for kind, (options, in_force) in kinds.items():
            ctx.progress.say(f"fleet: round {number}/{rounds}, {kind}")
            drained = _drain(ctx, kind, options, in_force=in_force)
            rates[kind].append(drained.rate)
            cpus[kind].append(round(drained.worker_cpu_ms, 3))
    ctx.minion.resume_queue(PAUSED_QUEUE)
    plain = statistics.median(rates["plain"])
    baseline = f"the same without, median of {rounds} alternating rounds"

    def extra(kind: str) -> dict[str, object]:
        # The workers' CPU per job varies less than the rate on a shared machine.
        return {
            "samples_jobs_per_s": rates[kind],
            "plain_samples_jobs_per_s": rates["plain"],
            "worker_cpu_ms_per_job": statistics.median(cpus[kind]),
            "plain_worker_cpu_ms_per_job": statistics.median(cpus["plain"]),
        }

    name = f"inline mode, W={WORKERS}, {_jobs(ctx)} no-op jobs"
    return [
        Row("fleet", f"claim with a paused queue and full limits in force, {name}",
            statistics.median(rates["paused queue and limits in force"]), "jobs/s", plain,
            baseline, at_least(0.9), extra=extra("paused queue and limits in force")),
        Row("fleet", f"jobs of a task with a concurrency limit (a hold each), {name}",
            statistics.median(rates["no-ops limited (concurrency 1000)"]), "jobs/s", plain,
            baseline, extra=extra("no-ops limited (concurrency 1000)")),
    ]
