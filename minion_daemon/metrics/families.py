"""The metrics written by worker processes and by the supervisor (``docs/metrics.md``)."""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import Counter, Gauge, Histogram

from minion_daemon import __version__

if TYPE_CHECKING:
    from minion_daemon.job import Job
    from minion_daemon.model import DequeuedJob, RepairReport
    from minion_daemon.runners import Ended
    from minion_daemon.worker import Worker

#: Run times from a no-op (milliseconds) to long batch jobs (an hour).
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)
#: Waits from an idle worker's pickup (about a millisecond) to an hour-long backlog.
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600,
)
#: Lags of an event loop, from the least reported (0.1 s) to a loop held until it was killed.
LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
JOB_LABELS: Final = ("task", "queue")


def job_outcome(ended: Ended) -> str:
    """How a job's run ended, for ``minion_jobs_processed_total``'s ``outcome``."""
    job, ending = ended.job, ended.ending
    if ending.timed_out_after is not None:
        return "timed_out"
    reason = ending.exit
    if reason is not None and not reason.clean and job.outcome != "finished":
        return "killed"
    return job.outcome or "superseded"


class WorkerMetrics:
    """Job counts and timings of one worker process, fed by its Worker's events."""

    def __init__(self) -> None:
        self.processed = Counter(
            "minion_jobs_processed",
            "Jobs that ended in a worker, by outcome",
            [*JOB_LABELS, "outcome"],
        )
        self.duration = Histogram(
            "minion_job_duration_seconds",
            "Run time of jobs",
            JOB_LABELS,
            buckets=DURATION_BUCKETS,
        )
        self.latency = Histogram(
            "minion_job_queue_latency_seconds",
            "Time from a job becoming runnable to its start",
            JOB_LABELS,
            buckets=LATENCY_BUCKETS,
        )
        self.running = Gauge(
            "minion_jobs_running", "Jobs running now", JOB_LABELS, multiprocess_mode="livesum"
        )
        self.dequeue_errors = Counter(
            "minion_dequeue_errors", "Failed turns of a worker's loop (database unreachable)"
        )
        self.reconnects = Counter(
            "minion_database_reconnects", "Recoveries of a worker after a database outage"
        )
        self.deferred = Counter(
            "minion_jobs_deferred",
            "Claimed jobs that went back to waiting, over their task's fleet-wide limit",
            [*JOB_LABELS, "limit"],
        )
        self.loop_lag = Histogram(
            "minion_event_loop_lag_seconds",
            "How late the event loop of async jobs ran, each time it was 0.1 s late or more",
            buckets=LAG_BUCKETS,
        )
        self.listening = Gauge(
            "minion_worker_listen_healthy",
            "1 when every worker's LISTEN connection is up",
            multiprocess_mode="livemin",
        )

    def attach(self, worker: Worker) -> None:
        """Count what ``worker`` does from now on."""
        worker.on("launch", self._started)
        worker.on("done", self._ended)
        worker.on("outage", lambda *_: self.dequeue_errors.inc())
        worker.on("recovered", lambda *_: self.reconnects.inc())
        worker.on("turn", self._turned)
        worker.on("deferred", self._deferred)
        worker.on("loop_lag", lambda _, seconds: self.loop_lag.observe(seconds))

    def _started(self, _: Worker, job: Job) -> None:
        labels = _labels(job)
        self.running.labels(*labels).inc()
        if job.latency is not None:
            self.latency.labels(*labels).observe(job.latency)

    def _ended(self, _: Worker, ended: Ended) -> None:
        labels = _labels(ended.job)
        self.running.labels(*labels).dec()
        self.duration.labels(*labels).observe(ended.duration)
        self.processed.labels(*labels, job_outcome(ended)).inc()

    def _deferred(self, _: Worker, job: DequeuedJob, limit: str) -> None:
        self.deferred.labels(job["task"], job["queue"] or "", limit).inc()

    def _turned(self, worker: Worker) -> None:
        self.listening.set(1 if worker.minion.backend.listening else 0)


def _labels(job: Job) -> tuple[str, str]:
    return job.task, job.queue or ""


class SupervisorMetrics:
    """What the supervisor did: its processes, restarts, repairs and reloads."""

    def __init__(self, schema_version: int) -> None:
        self.processes = Gauge(
            "minion_worker_processes",
            "Worker processes wanted, running, and running their loop",
            ["state"],
            multiprocess_mode="max",
        )
        self.restarts = Counter(
            "minion_worker_restarts", "Worker processes replaced", ["reason"]
        )
        self.repair_time = Gauge(
            "minion_repair_last_run_timestamp_seconds",
            "When this daemon last ran repair",
            multiprocess_mode="max",
        )
        self.repair_duration = Gauge(
            "minion_repair_duration_seconds",
            "How long the last repair took",
            multiprocess_mode="mostrecent",
        )
        self.repair_actions = Counter(
            "minion_repair_actions", "What repairs did", ["action"]
        )
        self.reloads = Counter("minion_config_reloads", "HUP reloads by result", ["result"])
        self.heartbeat = Gauge(
            "minion_supervisor_heartbeat_timestamp_seconds",
            "Last turn of the supervisor's loop",
            multiprocess_mode="max",
        )
        build = Gauge(
            "minion_build_info",
            "Version of minion-daemon and of the schema it found",
            ["version", "schema_version"],
            multiprocess_mode="max",
        )
        build.labels(__version__, str(schema_version)).set(1)
        for reason in ("died", "hung", "boot_failed", "stopped"):
            self.restarts.labels(reason)
        for result in ("applied", "invalid"):
            self.reloads.labels(result)

    def turned(self, desired: int, alive: int, booted: int) -> None:
        self.heartbeat.set(time.time())
        self.processes.labels("desired").set(desired)
        self.processes.labels("alive").set(alive)
        self.processes.labels("booted").set(booted)

    def repaired(self, report: RepairReport, duration: float) -> None:
        self.repair_time.set(time.time())
        self.repair_duration.set(duration)
        counts: dict[str, Any] = dataclasses.asdict(report)
        for action, count in counts.items():
            self.repair_actions.labels(action).inc(count)
