"""The cost of tracing per job: one worker draining no-op jobs with OpenTelemetry off and on.

Off: the worker as in the throughput phase, OpenTelemetry never imported. On: the worker's
process configures the SDK as a tasks module would (a tracer provider, a batch span processor,
an exporter that discards what it is given: the SDK's own work, not a collector's), and the
jobs are enqueued inside a span, so each carries a ``traceparent`` note and each run makes a
child span (fork mode: in the job process, which flushes it as it leaves). Off and on
alternate for ``tracing_rounds`` rounds; the rows give the mean of each, the rate against
the untraced one and the worker's CPU per job (its job processes included) against the same.
First, the hooks alone, timed in a process of their own without a database (bench/agents.py,
``hooks``): a drain's figures move with the machine's load by more than the hooks cost.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from bench.context import Context
from bench.drain import Drain, drain
from bench.processes import start_agent
from bench.report import Row

#: Calls timed by the hooks agent: about a second with the SDK.
HOOK_CALLS = 20_000


def _drain(ctx: Context, mode: str, traced: bool, jobs: int) -> Drain:
    ctx.main.reset()
    status: dict[str, Any] = {"jobs": ctx.sizes.jobs_per_process}
    name = f"tracing-{mode}-{'on' if traced else 'off'}"
    worker = start_agent(ctx.workdir, name, "worker", ctx.main.dsn,
                         {"mode": mode, "status": status, "tracing": traced})
    label = f"{mode} mode, tracing {'on' if traced else 'off'}"
    if not traced:
        return drain(ctx, ctx.main, ctx.minion, [worker], jobs, label=label)
    # The enqueuer's span: the bench process needs no exporter, only a valid context.
    tracer = TracerProvider().get_tracer("bench")
    with tracer.start_as_current_span("bench enqueue"):
        return drain(ctx, ctx.main, ctx.minion, [worker], jobs, label=label)


def _mode(ctx: Context, mode: str, jobs: int) -> list[Row]:
    drains: dict[bool, list[Drain]] = {False: [], True: []}
    for round_ in range(ctx.sizes.tracing_rounds):
        for traced in (False, True):
            ctx.progress.say(f"  {mode} mode, tracing {'on' if traced else 'off'}, "
                             f"round {round_ + 1}: {jobs} jobs")
            drains[traced].append(_drain(ctx, mode, traced, jobs))
    rate = {traced: statistics.mean(d.rate for d in runs) for traced, runs in drains.items()}
    cpu = {traced: statistics.mean(d.worker_cpu_ms for d in runs) for traced, runs in
           drains.items()}
    ctx.details[f"tracing_{mode}"] = {
        ("on" if traced else "off"): [
            {"jobs_per_second": round(run.rate, 1),
             "worker_cpu_ms_per_job": round(run.worker_cpu_ms, 3),
             "machine_cpu_ms_per_job": round(run.machine_cpu_ms, 3)}
            for run in runs
        ]
        for traced, runs in drains.items()
    }
    ctx.progress.say(f"  {mode} mode: {rate[False]:,.0f} -> {rate[True]:,.0f} jobs/s, worker CPU "
                     f"{cpu[False]:.3f} -> {cpu[True]:.3f} ms per job")
    shape = f"{mode} mode, W=1" + (f", jobs={ctx.sizes.jobs_per_process}" if mode == "fork" else "")
    return [
        Row("tracing", f"{shape}, tracing on", rate[True], "jobs/s", rate[False], "tracing off"),
        Row("tracing", f"{shape}, worker CPU per job, tracing on", cpu[True], "ms", cpu[False],
            "tracing off"),
        Row("tracing", f"{shape}, CPU per job added by tracing", cpu[True] - cpu[False], "ms"),
    ]


def _hooks(ctx: Context, traced: bool) -> dict[str, float]:
    agent = start_agent(ctx.workdir, f"tracing-hooks-{'on' if traced else 'off'}", "hooks",
                        ctx.main.dsn, {"count": HOOK_CALLS, "tracing": traced}, piped=True)
    assert agent.process.stdout is not None
    line = agent.process.stdout.readline()
    agent.process.wait()
    if not line:
        raise RuntimeError(f"the hooks agent printed nothing; its log ends:\n{agent.tail()}")
    figures: dict[str, float] = json.loads(line)
    return figures


def _hook_rows(ctx: Context) -> list[Row]:
    off, on = _hooks(ctx, traced=False), _hooks(ctx, traced=True)
    ctx.details["tracing_hooks_us"] = {"off": off, "on": on}
    return [
        Row("tracing", "job span hook, CPU per job, tracing on", on["job_span_us"], "us",
            off["job_span_us"], "OpenTelemetry not imported"),
        Row("tracing", "enqueue hook, CPU per job, inside a span", on["enqueue_hook_us"], "us",
            off["enqueue_hook_us"], "OpenTelemetry not imported"),
    ]


def run(ctx: Context) -> list[Row]:
    ctx.progress.say("tracing: one worker, OpenTelemetry off and on")
    return [
        *_hook_rows(ctx),
        *_mode(ctx, "inline", ctx.sizes.inline_jobs),
        *_mode(ctx, "fork", ctx.sizes.fork_jobs),
    ]
