"""Memory: ``minion-daemon run`` (the supervisor, 2 worker processes with jobs 4, the metrics
process) draining no-op jobs in fork mode; the peak RSS (VmHWM) of each, from /proc."""

from __future__ import annotations

import socket
import time

import yaml

from bench.context import Context
from bench.drain import DrainError, enqueue_noops
from bench.processes import children, memory, start_daemon, wait_until
from bench.report import Row, at_most


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _task_path(ctx: Context) -> None:
    """A dist-info on PYTHONPATH whose minion_daemon.tasks entry point is bench.tasks:noop."""
    info = ctx.workdir / "tasks" / "minion_daemon_bench_tasks-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: minion-daemon-bench-tasks\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[minion_daemon.tasks]\nnoop = bench.tasks:noop\n")


def _config(ctx: Context) -> None:
    config = {
        "workers": {"processes": ctx.sizes.memory_processes, "jobs": ctx.sizes.jobs_per_process},
        "tasks": {"entry_points": ["noop"]},
        "metrics": {"listen": f"127.0.0.1:{_free_port()}"},
        "logging": {"format": "json", "level": "info"},
    }
    (ctx.workdir / "daemon.yaml").write_text(yaml.safe_dump(config))


def run(ctx: Context) -> list[Row]:
    sizes = ctx.sizes
    ctx.progress.say(f"memory: minion-daemon run, {sizes.memory_processes} workers x jobs "
                     f"{sizes.jobs_per_process}, {sizes.memory_jobs} fork-mode jobs")
    ctx.main.reset()
    _task_path(ctx)
    _config(ctx)
    daemon = start_daemon(ctx.workdir, ctx.workdir / "daemon.yaml", ctx.main.dsn,
                          ctx.workdir / "tasks")
    peaks: dict[int, dict[str, int]] = {}
    fork_servers: set[int] = set()

    def sample() -> None:
        workers_now = children(daemon.pid)
        # A worker's child is its fork server (job processes are the fork server's).
        servers = [server for worker in workers_now for server in children(worker)]
        fork_servers.update(servers)
        for pid in [daemon.pid, *workers_now, *servers]:
            now = memory(pid)
            seen = peaks.setdefault(pid, {})
            for key, value in now.items():
                seen[key] = max(seen.get(key, 0), value)

    try:
        def booted() -> bool:
            if not daemon.alive():
                raise DrainError(f"minion-daemon run exited; its log ends:\n{daemon.tail()}")
            return len(ctx.main.worker_pids()) >= sizes.memory_processes

        wait_until(booted, 60, "minion-daemon workers registering", interval=0.2)
        time.sleep(1)
        workers = set(ctx.main.worker_pids())
        enqueue_noops(ctx.minion, sizes.memory_jobs)
        while (remaining := ctx.main.unfinished()) > 0:
            sample()
            ctx.progress.every(f"  {sizes.memory_jobs - remaining}/{sizes.memory_jobs} jobs done")
            time.sleep(0.1)
        sample()
    finally:
        daemon.stop(60)
    supervisor = peaks.get(daemon.pid, {})
    worker_peaks = [peaks[pid] for pid in workers if pid in peaks]
    servers = [peaks[pid] for pid in fork_servers if pid in peaks]
    others = [
        peaks[pid] for pid in peaks
        if pid != daemon.pid and pid not in workers and pid not in fork_servers
    ]
    ctx.details["memory_kb"] = {"supervisor": supervisor, "workers": worker_peaks,
                                "metrics": others}

    def megabytes(values: dict[str, int]) -> float:
        return values.get("VmHWM", values.get("VmRSS", 0)) / 1024

    worker = max(worker_peaks, key=megabytes)
    rows = [
        Row("memory", "supervisor peak RSS", megabytes(supervisor), "MB", target=at_most(60),
            note=f"PSS {supervisor.get('Pss', 0) / 1024:.0f} MB"),
        Row("memory", "worker process peak RSS (fork mode, under load)", megabytes(worker), "MB",
            target=at_most(45), note=f"PSS {worker.get('Pss', 0) / 1024:.0f} MB"),
    ]
    if servers:
        server = max(servers, key=megabytes)
        rows.append(Row("memory", "fork server peak RSS", megabytes(server), "MB",
                        target=at_most(25), note=f"PSS {server.get('Pss', 0) / 1024:.0f} MB"))
    rows.extend(Row("memory", "metrics process peak RSS", megabytes(other), "MB")
                for other in others)
    for row in rows:
        ctx.progress.say(f"  {row.name}: {row.ours:.1f} MB")
    return rows
