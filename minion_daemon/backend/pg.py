"""``PgBackend``: Minion::Backend::Pg for Python, on psycopg 3.

Every operation checks its arguments first (:mod:`minion_daemon.options`), then runs the same
statement as Perl's backend, returning the same keys. Where this goes beyond Perl it says so:
``enqueue_many``, enqueue on the caller's own connection, an atomic fail-and-retry, a dequeue
that listens before it claims, and a ``repair`` that reports what it did.
"""

from __future__ import annotations

import logging
import os
import select
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, cast

import psycopg
from psycopg.types.json import Jsonb

from minion_daemon.backend import estimates, sql, statements
from minion_daemon.backend.caller import CallerConnection
from minion_daemon.backend.connections import Connection, ConnectionSettings, disown
from minion_daemon.backend.executor import INHERITED, PgExecutor
from minion_daemon.backend.fleet import LISTEN_QUEUES, QUEUES_CHANNEL, FleetOperations
from minion_daemon.backend.limits import LimitOperations
from minion_daemon.backend.observe import ObserveOperations
from minion_daemon.backend.schedules import ScheduleOperations
from minion_daemon.backend.settings import PostgresSettings
from minion_daemon.backend.unique import UniqueOperations
from minion_daemon.model import (
    AutoMigrate,
    Backoff,
    DequeuedJob,
    History,
    HistoryPoint,
    JobInfo,
    JobList,
    LockInfo,
    LockList,
    PoolMode,
    PreparedStatements,
    RepairReport,
    Stats,
    Turn,
    WorkerInfo,
    WorkerList,
)
from minion_daemon.options import (
    Options,
    check_bool,
    check_id,
    check_int,
    check_keys,
    check_notes,
    check_seconds,
    parse_dequeue,
)

log = logging.getLogger("minion_daemon.backend")

_WORKER_FILTERS = frozenset(("before", "ids"))
_LOCK_FILTERS = frozenset(("names",))


#: The result repair stores for an active job whose worker is gone; Perl writes the same text.
WORKER_WENT_AWAY = "Worker went away"
#: The most jobs one batched claim may take.
MAX_BATCH: Final = 1000
#: The schema version that indexes (finished, state), which history counts along.
FINISHED_INDEX_SCHEMA: Final = 24


def default_backoff(retries: int) -> float:
    """Minion's retry delay: ``retries ** 4 + 15`` seconds (15, 16, 31, 96, 271, ...)."""
    return float(retries**4 + 15)


class PgBackend(
    ObserveOperations,
    ScheduleOperations,
    FleetOperations,
    UniqueOperations,
    LimitOperations,
    PgExecutor,
):
    """The PostgreSQL backend, shared with Perl's Minion::Backend::Pg on one database.

    Nothing touches the database before the first operation, which checks the server version
    and the schema: ``auto_migrate`` ``create`` (the default) creates it in an empty database at
    ``max_schema_version`` and uses an existing one at its version, ``upgrade`` also migrates
    an older one up, ``off`` never touches it (``True``/``False``: the old spelling of
    ``upgrade``/``off``).
    """

    def __init__(
        self,
        conninfo: str,
        *,
        backoff: Backoff = default_backoff,
        pooled: bool = True,
        min_size: int = 1,
        max_size: int = 4,
        auto_migrate: AutoMigrate | bool = "create",
        max_schema_version: int | None = None,
        application_name: str = "minion-daemon",
        connect_timeout: int = 10,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
        pool_mode: PoolMode = "session",
        listen_dsn: str | None = None,
        prepared_statements: PreparedStatements = "auto",
    ) -> None:
        settings = ConnectionSettings(
            conninfo,
            application_name,
            connect_timeout,
            lock_timeout,
            statement_timeout,
            transaction_pooling=pool_mode == "transaction",
            prepare=prepared_statements == "on"
            or (prepared_statements == "auto" and pool_mode == "session"),
            listen_conninfo=listen_dsn,
        )
        super().__init__(
            settings,
            pooled=pooled,
            min_size=min_size,
            max_size=max_size,
            auto_migrate=auto_migrate,
            max_schema_version=max_schema_version,
        )
        self.backoff = backoff
        self._listener: Connection | None = None
        #: The paused queues as last read; ``None`` once a notification said they changed.
        self._paused: frozenset[str] | None = None
        self._host = socket.gethostname()

    @classmethod
    def from_settings(
        cls,
        settings: PostgresSettings,
        dsn: str,
        *,
        role: str | None = None,
        pooled: bool = True,
        min_size: int | None = None,
        max_size: int | None = None,
        auto_migrate: AutoMigrate | None = None,
        max_connect_timeout: int | None = None,
        lock_timeout: float | None = None,
        statement_timeout: float | None = None,
    ) -> PgBackend:
        """The backend of one process of the daemon (or one command), built from the
        ``postgres`` section: each caller passes only what its role changes.

        ``dsn`` is given apart, already resolved (``--dsn``, the environment, the section, or
        the private cluster). ``role`` names the process in ``pg_stat_activity``
        (``minion-daemon metrics``); ``min_size``/``max_size`` replace the section's pool
        sizes; ``max_connect_timeout`` caps its connect timeout, for a process that answers
        HTTP and must not hang on a database that is away.
        """
        connect_timeout = settings.connect_timeout
        if max_connect_timeout is not None:
            connect_timeout = min(connect_timeout, max_connect_timeout)
        name = settings.application_name
        return cls(
            dsn,
            pooled=pooled,
            min_size=settings.pool_min_size if min_size is None else min_size,
            max_size=settings.pool_max_size if max_size is None else max_size,
            auto_migrate=settings.auto_migrate if auto_migrate is None else auto_migrate,
            max_schema_version=settings.max_schema_version,
            application_name=name if role is None else f"{name} {role}",
            connect_timeout=connect_timeout,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
            pool_mode=settings.pool_mode,
            listen_dsn=settings.listen_dsn,
            prepared_statements=settings.prepared_statements,
        )

    def forget_inherited(self) -> None:
        """After fork: the LISTEN connection is the parent's too; keep it, never use it."""
        if self._listener is not None:
            disown(self._listener)
            INHERITED.append(self._listener)
            self._listener = None
        self._paused = None
        super().forget_inherited()

    def close(self) -> None:
        """Close the pool (or connection) and the LISTEN connection."""
        self._drop_listener()
        super().close()

    # Remote control

    def broadcast(
        self, command: str, args: Sequence[Any] | None = None, ids: Sequence[int] | None = None
    ) -> bool:
        """Append ``[command, *args]`` to the inbox of the given workers (all when no ids)."""
        statement = statements.broadcast(command, args, ids)
        return self.rowcount("broadcast", statement.query, statement.params) > 0

    def receive(self, worker_id: int) -> list[list[Any]]:
        """Take every command waiting in the worker's inbox, leaving it empty."""
        params = {"id": check_id("receive: worker_id", worker_id)}
        row = self.row("receive", sql.RECEIVE, params)
        return [] if row is None else cast("list[list[Any]]", row["inbox"])

    # Jobs

    def dequeue(self, worker_id: int, wait: float, options: Options = None) -> DequeuedJob | None:
        """Claim the best runnable job for this worker, waiting up to ``wait`` seconds for one.

        Options: ``id``, ``min_priority``, ``queues`` (default ``["default"]``) and ``tasks``
        (default: any task; the Minion facade passes the tasks it has registered). Beyond Perl,
        queues paused with :meth:`pause_queue` are left out (but for a claim of one given
        ``id``). A worker's own loop waits itself: :meth:`settle_and_claim` never blocks.
        """
        jobs = self._dequeue("dequeue", worker_id, wait, options, limit=1)
        return jobs[0] if jobs else None

    def dequeue_many(
        self, worker_id: int, wait: float, limit: int, options: Options = None
    ) -> list[DequeuedJob]:
        """:meth:`dequeue` for batched mode: claim up to ``limit`` jobs in one statement, best
        first; an empty list when none came within ``wait``."""
        limit = check_int("dequeue_many: limit", limit, 1, MAX_BATCH)
        return self._dequeue("dequeue_many", worker_id, wait, options, limit=limit)

    def _dequeue(
        self, op: str, worker_id: int, wait: float, options: Options, *, limit: int
    ) -> list[DequeuedJob]:
        worker = check_id(f"{op}: worker_id", worker_id)
        seconds, opts = parse_dequeue(op, wait, options)
        params = {
            "worker": worker,
            "id": opts.id,
            "min_priority": opts.min_priority,
            "queues": list(opts.queues),
            "tasks": None if opts.tasks is None else list(opts.tasks),
            "limit": limit,
        }
        # Listening before the first claim means a job committed between the claim and the
        # wait still wakes us (Perl listens after the claim and can sleep through one).
        listener = self.listen() if seconds > 0 else None
        statement = sql.DEQUEUE if limit == 1 else sql.DEQUEUE_MANY
        # A worker claims with the same kind of filters every time, so the claim is prepared:
        # planning it anew cost about as much server time as running it. A claim of one
        # given id is not, so that it is planned with the id and takes the primary key.
        prepare = opts.id is None
        queues = opts.queues
        if prepare:
            params["queues"] = self._unpaused(queues)
        jobs = cast("list[DequeuedJob]", self.rows(op, statement, params, prepare=prepare))
        if jobs or seconds <= 0:
            return jobs
        select.select([] if listener is None else [listener], [], [], seconds)
        self.take_notifications()
        if prepare:
            params["queues"] = self._unpaused(queues)
        return cast("list[DequeuedJob]", self.rows(op, statement, params, prepare=prepare))

    def settle_and_claim(
        self,
        worker_id: int,
        limit: int,
        options: Options = None,
        *,
        finished: Sequence[tuple[int, int, Any, int | None]] = (),
        pids: Sequence[tuple[int, int]] = (),
    ) -> Turn:
        """A worker's turn in one statement and one commit, never waiting: record the
        successes ``finished`` (``(id, retries, result, pid or None)`` each, fenced like
        :meth:`finish_job`; the pid becomes the ``minion_pid`` note), note the pids of jobs
        that started (``(id, pid)``), and claim up to ``limit`` jobs (0: none) as
        :meth:`dequeue_many` would, best first.

        Beyond Perl, which spends a statement on each of these: one round trip per job.
        """
        op = "settle_and_claim"
        worker = check_id(f"{op}: worker_id", worker_id)
        _, opts = parse_dequeue(op, 0, options)
        settled = []
        for job_id, retries, result, pid in finished:
            checked_id, checked_retries = statements.check_result(op, job_id, retries, result)
            settled.append(
                {"id": checked_id, "retries": checked_retries, "result": result, "pid": pid}
            )
        params = {
            "worker": worker,
            "id": opts.id,
            "min_priority": opts.min_priority,
            "queues": self._unpaused(opts.queues),
            "tasks": None if opts.tasks is None else list(opts.tasks),
            "limit": check_int(f"{op}: limit", limit, 0, MAX_BATCH),
            "finished": Jsonb(settled),
            "pids": Jsonb([{"id": job_id, "pid": pid} for job_id, pid in pids]),
        }
        rows = self.rows(op, sql.SETTLE_AND_CLAIM, params, prepare=True)
        claimed = sorted(
            (row for row in rows if row["task"] is not None),
            key=lambda row: (-row["priority"], row["id"]),
        )
        for row in claimed:
            del row["priority"]
        recorded = frozenset(row["id"] for row in rows if row["task"] is None)
        return Turn(recorded, cast("list[DequeuedJob]", claimed))

    def listen(self) -> int | None:
        """Make sure the LISTEN connection listens, forgetting what it heard so far, before a
        claim; its descriptor (:attr:`notification_fd`), or ``None`` when listening failed, or
        cannot work (:attr:`can_listen`): then wait a while and claim again (polling)."""
        if os.getpid() != self._pid:
            self.forget_inherited()
        return self.notification_fd if self._listen() else None

    @property
    def notification_fd(self) -> int | None:
        """The descriptor that becomes readable when a job may have become runnable."""
        listener = self._listener
        return None if listener is None or listener.closed else listener.fileno()

    def take_notifications(self) -> None:
        """Consume what the LISTEN connection heard, after a wait on :meth:`notification_fd`."""
        if self._listener is None:
            return
        try:
            self._heard(self._listener)
        except psycopg.Error as error:
            log.warning("dequeue.listen_lost", extra={"error": str(error)})
            self._drop_listener()

    def _unpaused(self, queues: Sequence[str]) -> list[str]:
        """``queues`` without the paused ones. The claim SQL stays Minion's: a paused queue is
        left out of what it is asked for. The set is read again only after a notification on
        :data:`QUEUES_CHANNEL` (or on every claim while nothing listens)."""
        if self._paused is None or not self.listening:
            self._paused = frozenset(self.paused_queues())
        return [queue for queue in queues if queue not in self._paused]

    def _heard(self, listener: Connection) -> None:
        """Consume what the LISTEN connection heard; a queue change makes the set stale."""
        for notify in listener.notifies(timeout=0):
            if notify.channel == QUEUES_CHANNEL:
                self._paused = None

    def _listen(self) -> bool:
        """Make sure the dedicated connection LISTENs, and forget what it heard so far.

        A connection found dead here (terminated while we were not waiting on it) is replaced
        at once; only when a fresh one fails too does the wait fall back to polling.
        """
        if self._listener is not None and not self._listener.closed:
            try:
                self._heard(self._listener)
            except psycopg.Error:
                pass  # dead: replaced below
            else:
                return True
        self._drop_listener()
        settings = self.settings.listener()
        if settings is None:
            return False
        try:
            self._listener = settings.connect()
            self._listener.execute(sql.LISTEN)
            self._listener.execute(LISTEN_QUEUES)
            self._paused = None  # changes made while nothing listened were not heard
        except psycopg.Error as error:
            log.warning(
                "dequeue.listen_failed",
                extra={"error": self.settings.redact(str(error)), "consequence": "polling"},
            )
            self._drop_listener()
            return False
        return True

    @property
    def can_listen(self) -> bool:
        """Whether :meth:`listen` may listen at all: not behind a transaction pooler without
        ``listen_dsn``, where the worker polls instead."""
        return self.settings.listener() is not None

    @property
    def listening(self) -> bool:
        """Whether the dedicated LISTEN connection of ``dequeue`` is open."""
        return self._listener is not None and not self._listener.closed

    def _drop_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def enqueue(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        options: Options = None,
        *,
        conn: CallerConnection | None = None,
    ) -> int:
        """Insert one inactive job and return its id.

        Options: ``attempts``, ``delay``, ``expire``, ``lax``, ``notes``, ``parents``,
        ``priority``, ``queue``. With ``conn``, the job is inserted on the caller's connection
        inside the caller's transaction, so it exists exactly when the caller's data does.

        Beyond Perl, ``unique`` (a key) and ``unique_for`` (seconds): while the job that was
        enqueued with the key is inactive or active, or was created less than ``unique_for``
        seconds ago, the id returned is that job's and nothing is inserted (see
        :mod:`.unique`). It needs our own tables at version 2: :class:`SchemaError` otherwise.
        """
        statement = statements.enqueue(task, args, options)
        if statement.unique:
            return self.enqueue_unique(statement.params, conn)
        if conn is None:
            return int(self.scalar("enqueue", statement.query, statement.params))
        return self.ids_on_caller_connection("enqueue", conn, statement.query, statement.params)[0]

    def enqueue_many(
        self,
        jobs: Sequence[tuple[str, Sequence[Any] | None, Options]],
        *,
        conn: CallerConnection | None = None,
    ) -> list[int]:
        """Insert many jobs in one statement; returns their ids in the order given.

        Each item is ``(task, args, options)`` as for :meth:`enqueue`, and ``conn`` works the
        same way. Either every job is inserted or none is. A job whose ``unique`` key is held
        (by an existing job or by an earlier one of the batch) gets the holder's id.
        """
        statement = statements.enqueue_many(jobs)
        if statement is None:
            return []
        if statement.unique:
            return self.enqueue_unique_many(statement.params, conn)
        query, params = statement.query, statement.params
        if conn is None:
            ids = [int(row["id"]) for row in self.rows("enqueue_many", query, params)]
        else:
            ids = self.ids_on_caller_connection("enqueue_many", conn, query, params)
        # Ids come from the sequence in insertion order, which is the order given.
        return sorted(ids)

    def finish_job(self, job_id: int, retries: int, result: Any = None) -> bool:
        """Mark an active job finished with ``result``; false if (id, retries) is not active."""
        statement = statements.result("finish_job", "finished", job_id, retries, result)
        return self.rowcount("finish_job", statement.query, statement.params) > 0

    def fail_job(self, job_id: int, retries: int, result: Any = None) -> bool:
        """Mark an active job failed with ``result``, retrying it after ``backoff`` if attempts
        remain; false if (id, retries) is not active.

        Beyond Perl, the failure and the automatic retry commit together: a crash between the
        two can no longer leave a job failed that had attempts left.
        """
        return self.record_failure(job_id, retries, result) is not None

    def record_failure(
        self,
        job_id: int,
        retries: int,
        result: Any = None,
        *,
        backoff: Backoff | None = None,
        retry: bool = True,
    ) -> Literal["failed", "retried"] | None:
        """:meth:`fail_job` that tells what became of the job: ``"retried"`` when attempts
        remained, ``"failed"`` when none did (or ``retry`` is false: a failure that is final
        whatever the attempts), ``None`` when (id, retries) is not active. ``backoff`` (the
        task's own) replaces :attr:`backoff` for this retry."""
        failure, again = statements.record_failure(
            job_id, retries, result, self.backoff if backoff is None else backoff, retry=retry
        )
        with self.connection("fail_job") as conn, conn.pipeline():
            failed = conn.execute(failure.query, failure.params)
            retried = None if again is None else conn.execute(again.query, again.params)
        return statements.failure_outcome(
            failed.rowcount, None if retried is None else retried.rowcount
        )

    def retry_job(self, job_id: int, retries: int, options: Options = None) -> bool:
        """Make the job inactive again, in any state, fenced by ``retries``.

        Options: ``attempts``, ``delay``, ``expire``, ``lax``, ``parents``, ``priority``,
        ``queue``; an absent option keeps the job's current value.
        """
        statement = statements.retry_job(job_id, retries, options)
        return self.rowcount("retry_job", statement.query, statement.params) > 0

    def remove_job(self, job_id: int) -> bool:
        """Delete an inactive, failed or finished job (never an active one)."""
        statement = statements.remove_job(job_id)
        return self.rowcount("remove_job", statement.query, statement.params) > 0

    def note(self, job_id: int, merge: Mapping[str, Any]) -> bool:
        """Merge ``merge`` into the job's notes; a ``None`` value removes that key."""
        statement = statements.note(job_id, merge)
        return self.rowcount("note", statement.query, statement.params) > 0

    def list_jobs(self, offset: int, limit: int, options: Options = None) -> JobList:
        """A page of jobs, newest first, and the ``total`` matching the filters.

        Filters: ``before``, ``ids``, ``notes`` (any of these keys), ``queues``, ``states``,
        ``tasks``. Inactive jobs that have expired are never listed. ``total`` is exact up to
        10,000 (``estimates.EXACT_UP_TO``); beyond that it is PostgreSQL's estimate, never less
        than the jobs up to the end of this page (see :mod:`.estimates`). It is counted even
        for an offset past the end, where Perl reports 0 (an artefact of reading it from the
        first row).
        """
        params = statements.page_params("list_jobs", offset, limit, options, statements.JOB_FILTERS)
        params["count_limit"] = estimates.count_limit()
        with self.snapshot("list_jobs") as conn:
            jobs, counted = self.page_on(conn, (sql.LIST_JOBS, sql.COUNT_JOBS), params)
            # The jobs up to this page's end exist: an estimate must not fall short of them.
            at_least = max(counted, params["offset"] + len(jobs) if jobs else 0)
            total = estimates.count_or_estimate(conn, at_least, sql.ESTIMATE_LISTED_JOBS, params)
        return {"jobs": cast("list[JobInfo]", jobs), "total": total}

    def history(self) -> History:
        """Finished and failed counts of the last 24 hours, one point per hour; exact.

        Perl's 24 points (the first at ``NOW() - 23 hours``, epochs not aligned to the hour),
        each counting the jobs that ended in its clock hour of the session time zone. Below
        schema 24 the table is read whole, as Perl does.
        """
        indexed = self.schema_version >= FINISHED_INDEX_SCHEMA
        with self.snapshot("history") as conn:
            daily = conn.execute(sql.HISTORY if indexed else sql.HISTORY_SCAN).fetchall()
        return {"daily": cast("list[HistoryPoint]", daily)}

    def stats(self) -> Stats:
        """Counts of jobs, workers, locks (and schedules at schema 25).

        ``failed_jobs`` and ``finished_jobs`` are exact up to 10,000 each
        (``estimates.EXACT_UP_TO``); beyond that they are PostgreSQL's estimate (see
        :mod:`.estimates`). Every other field is exact.
        """
        query = sql.STATS_WITH_SCHEDULES if self.has_schedules else sql.STATS
        with self.snapshot("stats") as conn:
            row = conn.execute(query, {"limit": estimates.count_limit()}).fetchone()
            assert row is not None, "a SELECT without FROM returns one row"
            for state in ("failed", "finished"):
                row[f"{state}_jobs"] = estimates.jobs_in_state(conn, state, row[f"{state}_jobs"])
        row["inactive_workers"] = row["workers"] - row["active_workers"]
        return cast("Stats", row)

    def repair(
        self,
        *,
        missing_after: float = 1800,
        remove_after: float = 172800,
        stuck_after: float = 172800,
    ) -> RepairReport:
        """Minion's repair, step by step, with Perl's thresholds as defaults."""
        missing = {"seconds": check_seconds("repair: missing_after", missing_after)}
        old = {"seconds": check_seconds("repair: remove_after", remove_after)}
        stuck = {"seconds": check_seconds("repair: stuck_after", stuck_after)}
        workers = self.rowcount("repair", sql.REPAIR_MISSING_WORKERS, missing)
        finished = self.rowcount("repair", sql.REPAIR_OLD_JOBS, old)
        expired = self.rowcount("repair", sql.REPAIR_EXPIRED_JOBS)
        self.forget_gone_keys()
        abandoned = self.rows("repair", sql.REPAIR_ABANDONED_JOBS)
        gone = sum(self.fail_job(job["id"], job["retries"], WORKER_WENT_AWAY) for job in abandoned)
        stuck_jobs = self.rowcount("repair", sql.REPAIR_STUCK_JOBS, stuck)
        return RepairReport(workers, finished, expired, gone, stuck_jobs)

    def reset(self, options: Options = None) -> None:
        """``{"all": True}`` empties every table; ``{"locks": True}`` only the locks."""
        opts = check_keys("reset", options, frozenset(("all", "locks")))
        if opts.get("all") is not None and check_bool("reset: option 'all'", opts["all"]):
            query = sql.RESET_ALL_WITH_SCHEDULES if self.has_schedules else sql.RESET_ALL
            self.rowcount("reset", query)
            self.forget_all_keys()
        elif opts.get("locks") is not None and check_bool("reset: option 'locks'", opts["locks"]):
            self.rowcount("reset", sql.RESET_LOCKS)

    # Workers

    def register_worker(self, worker_id: int | None = None, options: Options = None) -> int:
        """Insert or heartbeat a worker; returns its id. Options: ``status`` (a mapping)."""
        opts = check_keys("register_worker", options, frozenset(("status",)))
        status = opts.get("status")
        if status is not None:
            status = check_notes("register_worker: option 'status'", status)
        params = {
            "id": None if worker_id is None else check_id("register_worker: id", worker_id),
            "host": self._host,
            "pid": os.getpid(),
            "status": Jsonb(status or {}),
        }
        return int(self.scalar("register_worker", sql.REGISTER_WORKER, params))

    def unregister_worker(self, worker_id: int) -> None:
        params = {"id": check_id("unregister_worker: id", worker_id)}
        self.rowcount("unregister_worker", sql.UNREGISTER_WORKER, params)

    def bury_worker(self, worker_id: int) -> int:
        """Beyond Perl: what repair does for a worker missing too long, at once, for a worker
        known to be dead. Its active jobs fail with "Worker went away" (retried while attempts
        remain), each fenced by its ``retries``, then its row goes; returns the jobs failed."""
        params = {"id": check_id("bury_worker: worker_id", worker_id)}
        held = self.rows("bury_worker", sql.DEAD_WORKER_JOBS, params)
        failed = sum(self.fail_job(job["id"], job["retries"], WORKER_WENT_AWAY) for job in held)
        self.rowcount("bury_worker", sql.UNREGISTER_WORKER, params)
        return failed

    def list_workers(self, offset: int, limit: int, options: Options = None) -> WorkerList:
        """A page of workers, newest first, with the ids of their active jobs."""
        params = statements.page_params("list_workers", offset, limit, options, _WORKER_FILTERS)
        workers, total = self.page("list_workers", (sql.LIST_WORKERS, sql.COUNT_WORKERS), params)
        return {"workers": cast("list[WorkerInfo]", workers), "total": total}

    # Locks

    def lock(self, name: str, duration: int, options: Options = None) -> bool:
        """Take one of ``limit`` (default 1) shared locks for ``duration`` seconds.

        A duration of 0 or less only checks whether the lock could be taken.
        """
        statement = statements.lock(name, duration, options)
        return bool(self.scalar("lock", statement.query, statement.params))

    def unlock(self, name: str) -> bool:
        """Release the holder of ``name`` that expires first."""
        statement = statements.unlock(name)
        return self.rowcount("unlock", statement.query, statement.params) > 0

    def list_locks(self, offset: int, limit: int, options: Options = None) -> LockList:
        """A page of unexpired locks, newest first. Filter: ``names``."""
        params = statements.page_params("list_locks", offset, limit, options, _LOCK_FILTERS)
        locks, total = self.page("list_locks", (sql.LIST_LOCKS, sql.COUNT_LOCKS), params)
        return {"locks": cast("list[LockInfo]", locks), "total": total}
