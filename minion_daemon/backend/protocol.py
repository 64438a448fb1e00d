"""The ``Backend`` protocol: what the Minion facade, workers and CLI need from a backend.

It is Minion::Backend's interface in Python. :class:`~minion_daemon.backend.pg.PgBackend` is
the implementation; the protocol lets the layers above depend on the operations, not on
psycopg, and lets a type checker hold any future backend to the same contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from minion_daemon.model import (
    Backoff,
    DequeuedJob,
    DispatchedSchedule,
    History,
    JobList,
    LockList,
    Observation,
    QueueInfo,
    RepairReport,
    ScheduleList,
    ServerConnections,
    Stats,
    TaskOffers,
    Turn,
    WorkerList,
)
from minion_daemon.options import Options

if TYPE_CHECKING:
    from minion_daemon.backend.caller import CallerConnection


class JobStore(Protocol):
    """What a job handle needs of the database: the part of :class:`Backend` a task's
    :class:`~minion_daemon.job.Job` reaches it through."""

    def finish_job(self, job_id: int, retries: int, result: Any = None) -> bool: ...

    def record_failure(
        self,
        job_id: int,
        retries: int,
        result: Any = None,
        *,
        backoff: Backoff | None = None,
        retry: bool = True,
    ) -> Literal["failed", "retried"] | None: ...

    def retry_job(self, job_id: int, retries: int, options: Options = None) -> bool: ...

    def remove_job(self, job_id: int) -> bool: ...

    def note(self, job_id: int, merge: Mapping[str, Any]) -> bool: ...

    def list_jobs(self, offset: int, limit: int, options: Options = None) -> JobList: ...


class Backend(JobStore, Protocol):
    backoff: Backoff

    @property
    def schema_version(self) -> int: ...

    @property
    def has_schedules(self) -> bool: ...

    @property
    def can_listen(self) -> bool: ...

    @property
    def listening(self) -> bool: ...

    def close(self) -> None: ...

    def broadcast(
        self, command: str, args: Sequence[Any] | None = None, ids: Sequence[int] | None = None
    ) -> bool: ...

    def receive(self, worker_id: int) -> list[list[Any]]: ...

    def dequeue(
        self, worker_id: int, wait: float, options: Options = None
    ) -> DequeuedJob | None: ...

    def dequeue_many(
        self, worker_id: int, wait: float, limit: int, options: Options = None
    ) -> list[DequeuedJob]: ...

    def settle_and_claim(
        self,
        worker_id: int,
        limit: int,
        options: Options = None,
        *,
        finished: Sequence[tuple[int, int, Any, int | None]] = (),
        pids: Sequence[tuple[int, int]] = (),
    ) -> Turn: ...

    def listen(self) -> int | None: ...

    @property
    def notification_fd(self) -> int | None: ...

    def take_notifications(self) -> None: ...

    def forget_inherited(self) -> None: ...

    def enqueue(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        options: Options = None,
        *,
        conn: CallerConnection | None = None,
    ) -> int: ...

    def enqueue_many(
        self,
        jobs: Sequence[tuple[str, Sequence[Any] | None, Options]],
        *,
        conn: CallerConnection | None = None,
    ) -> list[int]: ...

    def fail_job(self, job_id: int, retries: int, result: Any = None) -> bool: ...

    def history(self) -> History: ...

    def stats(self) -> Stats: ...

    def observe(self, timeout: float = ...) -> Observation: ...

    def server_connections(self) -> ServerConnections: ...
    def live_workers(self) -> TaskOffers: ...

    def repair(
        self, *, missing_after: float = ..., remove_after: float = ..., stuck_after: float = ...
    ) -> RepairReport: ...

    def reset(self, options: Options = None) -> None: ...

    def register_worker(self, worker_id: int | None = None, options: Options = None) -> int: ...

    def unregister_worker(self, worker_id: int) -> None: ...

    def bury_worker(self, worker_id: int) -> int: ...

    def list_workers(self, offset: int, limit: int, options: Options = None) -> WorkerList: ...

    def lock(self, name: str, duration: int, options: Options = None) -> bool: ...

    def unlock(self, name: str) -> bool: ...

    def list_locks(self, offset: int, limit: int, options: Options = None) -> LockList: ...

    def schedule(
        self,
        name: str,
        cron: str,
        task: str,
        args: Sequence[Any] | None = None,
        options: Options = None,
    ) -> int: ...

    def unschedule(self, name: str) -> bool: ...

    def pause_schedule(self, name: str) -> bool: ...

    def resume_schedule(self, name: str) -> bool: ...

    def list_schedules(self, offset: int, limit: int, options: Options = None) -> ScheduleList: ...

    def dispatch_schedules(self) -> list[DispatchedSchedule]: ...

    def pause_queue(self, name: str) -> bool: ...

    def resume_queue(self, name: str) -> bool: ...

    def paused_queues(self) -> list[str]: ...

    def list_queues(self) -> list[QueueInfo]: ...

    def perl_workers_of_queue(self, name: str) -> int: ...

    def cancel_job(self, job_id: int) -> bool: ...

    def defer_job(self, job_id: int, retries: int, worker_id: int) -> bool: ...

    def lock_expiry(self, name: str) -> float | None: ...
