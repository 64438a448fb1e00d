"""Throughput: W worker processes draining no-op jobs, per mode, next to their baselines.

* fork mode (a process per job, ``jobs`` 4 per worker) against Perl Minion's own worker with
  the same W and ``-j 4``, on a database of its own at schema 23 (Minion 10.25 refuses newer);
* inline mode (one claim and one finish per job) against pgbench running the same claim and
  finish as two transactions with W clients;
* batched mode (``batch`` jobs per claim, their finishes in one transaction) against the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench import pgbench
from bench.context import Context
from bench.drain import Drain, drain
from bench.processes import MachineCpu, start_agent, start_perl_worker
from bench.report import Row, at_least, at_most, at_most_ratio


def _ours(ctx: Context, processes: int, mode: str, status: dict[str, Any], jobs: int) -> Drain:
    ctx.main.reset()
    label = f"{mode}, {processes} worker process(es)"
    workers = [
        start_agent(ctx.workdir, f"{mode}-{processes}-{index}", "worker", ctx.main.dsn,
                    {"mode": "inline" if mode == "batched" else mode, "status": status})
        for index in range(processes)
    ]
    return drain(ctx, ctx.main, ctx.minion, workers, jobs, label=label)


def _perl(ctx: Context, processes: int) -> Drain:
    assert ctx.perl is not None
    assert ctx.perl_minion is not None
    ctx.perl.reset()
    workers = [
        start_perl_worker(ctx.workdir, f"perl-{processes}-{index}", ctx.perl.url,
                          ctx.sizes.jobs_per_process)
        for index in range(processes)
    ]
    label = f"Perl Minion, {processes} worker process(es)"
    return drain(ctx, ctx.perl, ctx.perl_minion, workers, ctx.sizes.perl_jobs, label=label)


def pgbench_dequeue_finish(ctx: Context, clients: int, jobs: int) -> tuple[float, dict[str, Any]]:
    """pgbench's claim+finish rate with ``clients`` clients over ``jobs`` prefilled jobs."""
    assert ctx.pgbench is not None
    ctx.main.reset()
    worker = ctx.minion.backend.register_worker()
    per_client = jobs // clients
    # A few spare jobs, so that no client's last claim can come back empty (\gset needs a row).
    ctx.minion.enqueue_many([("noop", None, None)] * (per_client * clients + 10 * clients))
    ctx.main.execute("CHECKPOINT")
    defines = pgbench.variables({**pgbench.DEQUEUE_VALUES, **pgbench.FINISH_VALUES})
    with MachineCpu() as cpu:
        rate, count = pgbench.run(
            ctx.pgbench, ctx.main.dsn, pgbench.dequeue_finish_script(), ctx.workdir,
            name="dequeue-finish", clients=clients, transactions=per_client,
            defines=[*defines, f"-Dworker={worker}"],
        )
    return rate, {"machine_cpu_ms_per_job": round(cpu.seconds * 1000 / count, 3)}


@dataclass
class Measured:
    """A rate, or why there is none; ``extra`` holds a drain's per-job figures."""

    value: float | None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def name(self, label: str) -> str:
        return label if self.value is not None else self.note


def _measure(
    ctx: Context, what: str, run: Callable[[], Drain | tuple[float, dict[str, Any]]]
) -> Measured:
    """Run one measurement; a failed one is reported, not fatal."""
    ctx.progress.say(f"  {what}...")
    try:
        result = run()
    except Exception as error:  # noqa: BLE001 - one broken measurement must not end the run
        ctx.progress.say(f"  {what} FAILED: {error}")
        return Measured(None, f"failed: {str(error).splitlines()[0][:80]}")
    if not isinstance(result, Drain):
        rate, extra = result
        cpu = extra["machine_cpu_ms_per_job"]
        ctx.progress.say(f"  {what}: {rate:,.0f} jobs/s (per job: CPU {cpu:.2f} ms in all)")
        return Measured(rate, "", extra)
    extra = {
        "jobs": result.jobs,
        "seconds": round(result.seconds, 3),
        "commits_per_job": result.commits,
        "sessions_per_job": result.sessions,
        "worker_cpu_ms_per_job": round(result.worker_cpu_ms, 3),
        "machine_cpu_ms_per_job": round(result.machine_cpu_ms, 3),
        "worker_peak_rss_mb": [round(kb / 1024, 1) for kb in result.peaks],
    }
    ctx.details.setdefault("drains", {})[what] = extra
    per_job = (f"CPU {result.worker_cpu_ms:.2f} ms in the workers, "
               f"{result.machine_cpu_ms:.2f} ms in all")
    if result.commits is not None and result.sessions is not None:
        per_job += f", {result.commits:.2f} commits, {result.sessions:.2f} connections"
    ctx.progress.say(f"  {what}: {result.rate:,.0f} jobs/s (per job: {per_job})")
    return Measured(result.rate, "", extra)


def _with_processes(ctx: Context, count: int) -> list[Row]:
    sizes, jobs = ctx.sizes, ctx.sizes.jobs_per_process
    ctx.progress.say(f"throughput with {count} worker process(es) / client(s)")
    base = Measured(None, "pgbench not found")
    if ctx.pgbench:
        base = _measure(ctx, f"pgbench dequeue+finish, {count} client(s)",
                        lambda: pgbench_dequeue_finish(ctx, count, sizes.pgbench_jobs))
    inline = _measure(ctx, f"inline mode, W={count}",
                      lambda: _ours(ctx, count, "inline", {"jobs": jobs}, sizes.inline_jobs))
    batched = Measured(None, "n/a: this Worker has no batch option")
    if ctx.batch_supported:
        batched = _measure(
            ctx, f"batched mode (batch={ctx.batch}), W={count}",
            lambda: _ours(ctx, count, "batched", {"batch": ctx.batch}, sizes.batched_jobs),
        )
    fork = _measure(ctx, f"fork mode, W={count}, jobs={jobs}",
                    lambda: _ours(ctx, count, "fork", {"jobs": jobs}, sizes.fork_jobs))
    perl = Measured(None, "Perl Minion not installed")
    if ctx.perl is not None:
        perl = _measure(ctx, f"Perl Minion worker, W={count}, -j {jobs}",
                        lambda: _perl(ctx, count))
    pgbench_name = base.name(f"pgbench, {count} client(s)")
    return [
        Row("throughput", f"inline mode, W={count}", inline.value, "jobs/s", base.value,
            pgbench_name, at_least(1.0), inline.note, {**inline.extra, "pgbench": base.extra}),
        Row("throughput", f"batched mode (batch={ctx.batch}), W={count}", batched.value,
            "jobs/s", base.value, pgbench_name, at_least(8), batched.note,
            {**batched.extra, "pgbench": base.extra}),
        Row("throughput", f"fork mode, W={count}, jobs={jobs}", fork.value, "jobs/s",
            perl.value, perl.name(f"Perl Minion worker, W={count}, -j {jobs}"), at_least(3),
            fork.note, {**fork.extra, "perl": perl.extra}),
        Row("throughput", f"fork mode CPU per job (worker + job processes), W={count}",
            fork.extra.get("worker_cpu_ms_per_job"), "ms",
            perl.extra.get("worker_cpu_ms_per_job"), "Perl Minion worker", at_most_ratio(0.4)),
    ]


def run(ctx: Context) -> list[Row]:
    rows = []
    for count in ctx.sizes.processes:
        rows.extend(_with_processes(ctx, count))
    inline_peaks = [
        peak for row in rows if row.name.startswith(("inline", "batched"))
        for peak in row.extra.get("worker_peak_rss_mb", [])
    ]
    if inline_peaks:
        rows.append(Row("memory", "worker process peak RSS, inline and batched modes",
                        max(inline_peaks), "MB", target=at_most(60)))
    return rows
