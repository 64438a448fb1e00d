"""Enqueue: ``enqueue`` one job per transaction against pgbench running the same INSERT at
the same client count, ``enqueue_many`` against single ``enqueue``, and (phase ``unique``)
``enqueue`` with a ``unique`` key against plain ``enqueue``."""

from __future__ import annotations

import json
import statistics

from bench import pgbench
from bench.context import Context
from bench.processes import MachineCpu, start_agent, stop_all
from bench.report import Row, at_least

#: Issue 17's goal: an enqueue with a ``unique`` key costs at most 1.3 times a plain one, so
#: its rate is at least 1 / 1.3 = 0.769 of the plain rate (0.77 at the table's two decimals).
UNIQUE_TARGET = 0.77
#: Plain and unique enqueues alternate for this many rounds each, so that a change in the
#: load of the (shared) machine falls on both alike; the medians are compared.
UNIQUE_ROUNDS = 3


def ours(
    ctx: Context, clients: int, many: int = 0, unique: str | None = None
) -> tuple[float, float]:
    """Jobs per second of ``clients`` concurrent client processes (``many`` per call; each
    with a ``unique`` key as ``bench/agents.py`` says), and the machine's CPU milliseconds per
    job."""
    ctx.main.reset()
    options = {"seconds": ctx.sizes.enqueue_seconds, "many": many, "unique": unique}
    agents = [
        start_agent(ctx.workdir, f"enqueue-{clients}-{many}-{unique}-{index}", "enqueue",
                    ctx.main.dsn, options, piped=True)
        for index in range(clients)
    ]
    try:
        for agent in agents:
            assert agent.process.stdout is not None
            if agent.process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"enqueue client did not start:\n{agent.tail()}")
        with MachineCpu() as cpu:
            for agent in agents:
                assert agent.process.stdin is not None
                agent.process.stdin.write("go\n")
                agent.process.stdin.flush()
            reports = []
            for agent in agents:
                assert agent.process.stdout is not None
                reports.append(json.loads(agent.process.stdout.readline()))
    finally:
        stop_all(agents)
    jobs = sum(report["jobs"] for report in reports)
    rate = sum(report["jobs"] / report["seconds"] for report in reports)
    return float(rate), cpu.seconds * 1000 / jobs


def baseline(ctx: Context, clients: int) -> tuple[float, float]:
    """pgbench's INSERT rate, and the machine's CPU milliseconds per job."""
    assert ctx.pgbench is not None
    ctx.main.reset()
    with MachineCpu() as cpu:
        rate, count = pgbench.run(
            ctx.pgbench, ctx.main.dsn, pgbench.enqueue_script(), ctx.workdir, name="enqueue",
            clients=clients, seconds=ctx.sizes.enqueue_seconds,
            defines=pgbench.variables(pgbench.ENQUEUE_VALUES),
        )
    return rate, cpu.seconds * 1000 / count


def _say(ctx: Context, rate: float, cpu: float) -> None:
    ctx.progress.say(f"  {rate:,.0f} jobs/s (per job: CPU {cpu:.2f} ms in all)")


def run(ctx: Context) -> list[Row]:
    rows, single = [], None
    for clients in ctx.sizes.enqueue_clients:
        base, base_cpu = None, None
        if ctx.pgbench:
            ctx.progress.say(f"enqueue: pgbench INSERT, {clients} client(s)")
            base, base_cpu = baseline(ctx, clients)
            _say(ctx, base, base_cpu)
        ctx.progress.say(f"enqueue: Minion.enqueue, {clients} client process(es)")
        rate, cpu = ours(ctx, clients)
        _say(ctx, rate, cpu)
        single = rate if clients == 1 else single
        name = f"pgbench, {clients} client(s)" if base else "pgbench not found"
        extra = {"machine_cpu_ms_per_job": cpu, "pgbench_machine_cpu_ms_per_job": base_cpu}
        rows.append(Row("enqueue", f"enqueue, {clients} client(s)", rate, "jobs/s", base, name,
                        at_least(0.8), extra=extra))
    batch = ctx.sizes.enqueue_many_batch
    ctx.progress.say(f"enqueue: Minion.enqueue_many of {batch}, 1 client")
    many, cpu = ours(ctx, 1, many=batch)
    _say(ctx, many, cpu)
    rows.append(Row("enqueue", f"enqueue_many ({batch} per call), 1 client", many, "jobs/s",
                    single, "enqueue, 1 client", at_least(20),
                    extra={"machine_cpu_ms_per_job": cpu}))
    return rows


def unique(ctx: Context) -> list[Row]:
    """``enqueue("noop", unique=KEY)`` against plain ``enqueue("noop")``, 1 client each, in
    alternating rounds: a new key each call (each creates a job: the cost the goal is about),
    and one key for all (each returns the job holding it)."""
    kinds = {"plain": None, "new key": "new", "held key": "held"}
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    cpus: dict[str, list[float]] = {kind: [] for kind in kinds}
    for round_number in range(1, UNIQUE_ROUNDS + 1):
        for kind, option in kinds.items():
            ctx.progress.say(f"unique: round {round_number}/{UNIQUE_ROUNDS}, enqueue, {kind}")
            rate, cpu = ours(ctx, 1, unique=option)
            _say(ctx, rate, cpu)
            rates[kind].append(rate)
            cpus[kind].append(cpu)
    plain = statistics.median(rates["plain"])
    baseline = f"plain enqueue, 1 client, median of {UNIQUE_ROUNDS} alternating rounds"

    def extra(kind: str) -> dict[str, object]:
        return {
            "samples_jobs_per_s": rates[kind],
            "plain_samples_jobs_per_s": rates["plain"],
            "machine_cpu_ms_per_job": statistics.median(cpus[kind]),
            "plain_machine_cpu_ms_per_job": statistics.median(cpus["plain"]),
        }

    return [
        Row("enqueue", "enqueue with unique= (a new key each call), 1 client",
            statistics.median(rates["new key"]), "jobs/s", plain, baseline,
            at_least(UNIQUE_TARGET), extra=extra("new key")),
        Row("enqueue", "enqueue with unique= (one key: returns its holder), 1 client",
            statistics.median(rates["held key"]), "jobs/s", plain, baseline,
            extra=extra("held key")),
    ]
