"""Queue metrics from the database, one cached round of queries per ``cache_seconds``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from minion_daemon import logs
from minion_daemon.errors import DatabaseUnavailableError, MinionError

if TYPE_CHECKING:
    from minion_daemon.model import Observation

log = logs.get_logger("minion_daemon.metrics")


class DatabaseCollector(Collector):
    """Turns :meth:`Backend.observe` into metrics; thread-safe, so concurrent scrapes of the
    threaded server share one round."""

    def __init__(
        self,
        observe: Callable[[], Observation],
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._observe = observe
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._taken: float | None = None
        #: The last good observation: a failed round reports the error beside it.
        self.last: Observation | None = None
        #: The last round failed (timed out, or the database was unreachable).
        self.failed = False
        #: The last round could not reach the database at all.
        self.unreachable = False
        self.rounds = 0

    def refresh(self) -> None:
        """Query the database unless the last round is younger than the cache window."""
        with self._lock:
            now = self._clock()
            if self._taken is not None and now - self._taken < self._cache_seconds:
                return
            self._taken = now
            self.rounds += 1
            try:
                self.last = self._observe()
            except MinionError as error:
                if not self.failed:  # one line per outage, not one per scrape
                    log.warning("metrics.query_round_failed", error=str(error))
                self.failed = True
                self.unreachable = isinstance(error, DatabaseUnavailableError)
            else:
                self.failed = self.unreachable = False

    def collect(self) -> Iterator[Metric]:
        self.refresh()
        yield _gauge(
            "minion_database_up",
            "1 when the database answered the last round",
            not self.unreachable,
        )
        yield _gauge("minion_scrape_error", "1 when the last query round failed", self.failed)
        yield CounterMetricFamily(
            "minion_scrape_rounds", "Query rounds run for scrapes", value=self.rounds
        )
        if self.last is not None:
            yield from _observation_metrics(self.last)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _observation_metrics(seen: Observation) -> Iterator[Metric]:
    stats = seen["stats"]
    jobs = GaugeMetricFamily("minion_jobs", "Jobs by state", labels=["state"])
    for state in ("inactive", "active", "failed", "finished"):
        jobs.add_metric([state], stats[f"{state}_jobs"])  # type: ignore[literal-required]
    yield jobs
    yield _gauge("minion_delayed_jobs", "Inactive jobs not due yet", stats["delayed_jobs"])
    workers = GaugeMetricFamily("minion_workers", "Registered workers", labels=["state"])
    workers.add_metric(["active"], stats["active_workers"])
    workers.add_metric(["inactive"], stats["inactive_workers"])
    yield workers
    yield _gauge("minion_active_locks", "Minion locks not expired", stats["active_locks"])
    yield CounterMetricFamily(
        "minion_enqueued_jobs", "Jobs ever enqueued", value=stats["enqueued_jobs"]
    )
    if seen["schedules"] is not None:
        yield _gauge("minion_schedules", "Cron schedules", seen["schedules"])
    paused = GaugeMetricFamily(
        "minion_queue_paused", "1 for each queue paused for Python workers", labels=["queue"]
    )
    for queue in seen["paused_queues"]:
        paused.add_metric([queue], 1)
    yield paused
    backlog = GaugeMetricFamily(
        "minion_backlog_jobs", "Runnable jobs waiting", labels=["queue", "task"]
    )
    oldest = GaugeMetricFamily(
        "minion_backlog_oldest_age_seconds",
        "How long the oldest runnable job has been runnable",
        labels=["queue", "task"],
    )
    for entry in seen["backlog"]:
        backlog.add_metric([entry["queue"], entry["task"]], entry["jobs"])
        oldest.add_metric([entry["queue"], entry["task"]], entry["oldest_age"])
    yield backlog
    yield oldest
    unrunnable = GaugeMetricFamily(
        "minion_jobs_unrunnable",
        "Runnable jobs of tasks no live worker lists (none while a worker lists no tasks)",
        labels=["task"],
    )
    for task, count in seen["unrunnable"].items():
        unrunnable.add_metric([task], count)
    yield unrunnable
    yield _gauge(
        "minion_workers_tasks_unknown",
        "Live workers whose status lists no tasks (Perl's, older daemons')",
        seen["unlisted_workers"],
    )
    yield _gauge(
        "minion_oldest_active_job_age_seconds",
        "How long the longest-running active job has run",
        seen["oldest_active_age"],
    )
    recent = GaugeMetricFamily(
        "minion_recent_jobs", "Jobs that ended within the window", labels=["outcome", "window"]
    )
    counts = seen["recent"]
    recent.add_metric(["finished", "1h"], counts["finished_1h"])
    recent.add_metric(["failed", "1h"], counts["failed_1h"])
    recent.add_metric(["finished", "24h"], counts["finished_24h"])
    recent.add_metric(["failed", "24h"], counts["failed_24h"])
    yield recent
    health = seen["health"]
    yield _gauge("minion_pg_jobs_live_tuples", "Live rows of minion_jobs", health["live_tuples"])
    yield _gauge("minion_pg_jobs_dead_tuples", "Dead rows of minion_jobs", health["dead_tuples"])
    yield _gauge(
        "minion_pg_jobs_last_autovacuum_timestamp_seconds",
        "Last autovacuum of minion_jobs (0: never)",
        health["last_autovacuum"] or 0,
    )
    yield _gauge(
        "minion_pg_oldest_transaction_age_seconds",
        "Age of the oldest open transaction in the database",
        health["oldest_transaction_age"],
    )
    yield _gauge(
        "minion_scrape_duration_seconds", "Database time of the last query round", seen["duration"]
    )
