"""Records shared by every layer: the shapes the backend returns. No I/O.

The dictionaries keep Perl Minion's keys exactly, so that code (and people) who know
``Minion::Backend::Pg`` find the same fields. Timestamps are epoch seconds as floats; booleans
such as ``lax`` and ``paused`` are Python ``bool`` (Perl shows them as 1/0; ``True == 1``).
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict


class Mode(enum.StrEnum):
    """How a worker runs a task's jobs: each in a process of its own (``fork``, the default),
    in the worker's own process (``inline``, one after another; batched with
    ``workers.batch``), or as coroutines on the event loop of a process of the worker's own
    (``async``, the default of ``async def`` tasks). A string enum, so config values and
    ``mode="inline"`` compare equal."""

    FORK = "fork"
    INLINE = "inline"
    ASYNC = "async"

    @classmethod
    def parse(cls, value: object, where: str) -> Mode:
        """``value`` as a mode; a ``ValueError`` that names ``where`` and the choices."""
        if isinstance(value, str) and value in cls._value2member_map_:
            return cls(value)
        choices = " or ".join(mode.value for mode in cls)
        raise ValueError(f"{where}: mode must be {choices}, got {value!r}")


JobState = Literal["inactive", "active", "failed", "finished"]

#: Seconds before a failed job's automatic retry, from its retries so far.
Backoff = Callable[[int], float]
JOB_STATES: tuple[JobState, ...] = ("inactive", "active", "failed", "finished")

#: What a backend does with the schema at its first use (``postgres.auto_migrate``). ``create``:
#: an empty database gets the schema at ``max_schema_version``, an existing one is used at its
#: version; ``upgrade``: an older one is migrated up to ``max_schema_version`` too; ``off``:
#: the schema is never touched.
AutoMigrate = Literal["create", "upgrade", "off"]
AUTO_MIGRATE_CHOICES: tuple[AutoMigrate, ...] = ("create", "upgrade", "off")


#: What sits between the daemon and PostgreSQL: the server itself or a session pooler
#: (``session``), or a pooler that lends a server connection per transaction (``transaction``,
#: PgBouncer's transaction pooling), where no session state may be set or relied on.
PoolMode = Literal["session", "transaction"]
#: Whether the backend prepares its hot statements: ``auto`` is ``on`` in pool mode ``session``
#: and ``off`` in ``transaction``, where only PgBouncer 1.21+ (``max_prepared_statements``)
#: keeps them apart per client.
PreparedStatements = Literal["auto", "on", "off"]


def auto_migrate_choice(value: object) -> AutoMigrate | None:
    """``value`` as an :data:`AutoMigrate` choice, or ``None`` if it is none.

    ``True`` and ``False`` are the spelling from before ``create`` existed and keep what they
    meant: migrate up at start (``upgrade``), never migrate (``off``). YAML reads a bare
    ``off`` as false, so that word means the same in a config file either way.
    """
    if isinstance(value, bool):
        return "upgrade" if value else "off"
    return next((choice for choice in AUTO_MIGRATE_CHOICES if value == choice), None)


class DequeuedJob(TypedDict):
    """What ``dequeue`` hands a worker: enough to run the job and to fence its updates."""

    id: int
    args: list[Any]
    retries: int
    task: str
    queue: str
    #: Seconds from when it became runnable (``delayed``) to this claim.
    latency: float
    #: The ``traceparent`` and ``tracestate`` notes its enqueuer wrote, when it wrote one.
    trace_context: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class Turn:
    """What a worker's ``settle_and_claim`` did: the successes it recorded, the jobs it claimed."""

    recorded: frozenset[int]
    claimed: list[DequeuedJob]


class JobInfo(TypedDict):
    """One row of ``list_jobs``, with ``children`` and the server's ``time``."""

    id: int
    args: list[Any]
    attempts: int
    children: list[int]
    created: float
    delayed: float
    expires: float | None
    finished: float | None
    lax: bool
    notes: dict[str, Any]
    parents: list[int]
    priority: int
    queue: str
    result: Any
    retried: float | None
    retries: int
    started: float | None
    state: JobState
    task: str
    time: float
    worker: int | None


class JobList(TypedDict):
    jobs: list[JobInfo]
    total: int


class WorkerInfo(TypedDict):
    id: int
    host: str
    pid: int
    status: dict[str, Any]
    notified: float
    started: float
    jobs: list[int]


class WorkerList(TypedDict):
    workers: list[WorkerInfo]
    total: int


class LockInfo(TypedDict):
    id: int
    name: str
    expires: float


class LockList(TypedDict):
    locks: list[LockInfo]
    total: int


class ScheduleInfo(TypedDict):
    id: int
    args: list[Any]
    attempts: int
    created: float
    cron: str
    expire: int | None
    last_job: int | None
    last_run: float | None
    lax: bool
    name: str
    next_run: float
    notes: dict[str, Any]
    paused: bool
    priority: int
    queue: str
    task: str


class ScheduleList(TypedDict):
    schedules: list[ScheduleInfo]
    total: int


class DispatchedSchedule(TypedDict):
    """One job created by ``dispatch_schedules``: the schedule's id and name, and the job id."""

    id: int
    name: str
    job: int


class Stats(TypedDict):
    """``stats``: Perl's fields; ``schedules``/``inactive_schedules`` only at schema 25."""

    active_jobs: int
    active_locks: int
    active_workers: int
    delayed_jobs: int
    enqueued_jobs: int
    failed_jobs: int
    finished_jobs: int
    inactive_jobs: int
    inactive_workers: int
    uptime: float
    workers: int
    schedules: NotRequired[int]
    inactive_schedules: NotRequired[int]


class HistoryPoint(TypedDict):
    epoch: float
    failed_jobs: int
    finished_jobs: int


class History(TypedDict):
    daily: list[HistoryPoint]


class Backlog(TypedDict):
    """Runnable jobs of one (queue, task): inactive, due (``delayed`` passed) and unexpired."""

    queue: str
    task: str
    jobs: int
    #: Seconds since the oldest of them became runnable (now - its ``delayed``).
    oldest_age: float


class DatabaseHealth(TypedDict):
    """PostgreSQL's view of ``minion_jobs`` and of the database's open transactions."""

    live_tuples: int
    dead_tuples: int
    #: Epoch seconds of the last autovacuum of ``minion_jobs``; ``None`` if there was none.
    last_autovacuum: float | None
    #: Seconds the oldest open transaction of another client session has been open; 0 if none.
    oldest_transaction_age: float


class RecentJobs(TypedDict):
    """Jobs now finished or failed whose ``finished`` time lies within the last hour / 24 hours."""

    finished_1h: int
    failed_1h: int
    finished_24h: int
    failed_24h: int


@dataclass(frozen=True, slots=True)
class TaskOffers:
    """Which tasks the live workers offer, as their statuses list them (beyond Perl).

    A worker is live while its last heartbeat is younger than two of its own heartbeat
    intervals, and at least a minute (``live_workers`` in the backend says exactly).
    """

    #: Live workers.
    workers: int
    #: Live workers whose status lists no tasks (Perl's, older daemons'): they may run any.
    unlisted: int
    #: The tasks the other live workers list.
    tasks: frozenset[str]

    def may_run(self, task: str) -> bool:
        """Whether some live worker may run ``task``: one lists it, or one lists no tasks."""
        return self.unlisted > 0 or task in self.tasks


class Observation(TypedDict):
    """``observe``: one round of what the metrics read from the database (see its docstring
    for which counts are exact and which are estimates)."""

    stats: Stats
    backlog: list[Backlog]
    #: Seconds the longest-running active job has been running; 0 when none is.
    oldest_active_age: float
    recent: RecentJobs
    #: Schedules, paused or not; ``None`` below schema 25, which has none.
    schedules: int | None
    health: DatabaseHealth
    #: Runnable jobs per task that no live worker lists (their backlog summed over queues);
    #: empty while a live worker lists no tasks, since it may run any of them.
    unrunnable: dict[str, int]
    #: Live workers whose status lists no tasks (:attr:`TaskOffers.unlisted`).
    unlisted_workers: int
    #: Queues paused for Python workers (none without minion-daemon's own tables).
    paused_queues: list[str]
    #: Seconds the round took, measured by the client from BEGIN to the last answer.
    duration: float


@dataclass(frozen=True, slots=True)
class ServerConnections:
    """The server's ``max_connections``, and how many of them only superusers may take."""

    max_connections: int
    reserved: int


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What one ``repair`` did, step by step (Perl returns nothing; operators want the counts)."""

    workers_removed: int
    finished_jobs_removed: int
    expired_jobs_removed: int
    jobs_failed_worker_gone: int
    jobs_failed_stuck: int


class QueueInfo(TypedDict):
    """``list_queues``: one queue's runnable backlog, running jobs and whether it is paused."""

    queue: str
    #: Inactive jobs neither delayed nor expired (parents are not considered).
    backlog: int
    running: int
    paused: bool


@dataclass(frozen=True, slots=True)
class ExitReason:
    """How a child ended, in Perl's terms: ``$? >> 8`` and ``$? & 127``."""

    code: int
    signal: int

    @property
    def clean(self) -> bool:
        return self.code == 0 and self.signal == 0

    @property
    def signal_name(self) -> str | None:
        """``"SIGKILL"`` and the like, for logs; ``None`` when no signal ended it."""
        if not self.signal:
            return None
        try:
            return signal.Signals(self.signal).name
        except ValueError:
            return str(self.signal)

    def __str__(self) -> str:
        return f"exit code: {self.code}, signal: {self.signal}"
