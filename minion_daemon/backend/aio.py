"""``AsyncPgBackend``: the operations an asyncio program needs, on psycopg's async connections.

It is not a second backend: every operation takes its checked statement from
:mod:`.statements`, which :class:`~minion_daemon.backend.pg.PgBackend` runs too, so both
clients refuse the same arguments with the same messages and run the same SQL. Only the
waiting differs: here it yields to the event loop. It never creates or migrates the schema
(the daemon, or ``minion-daemon migrate``, does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Literal, cast

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from minion_daemon.backend import estimates, sql, statements
from minion_daemon.backend.caller import AsyncCallerConnection
from minion_daemon.backend.connections import ConnectionSettings
from minion_daemon.backend.executor import translate_errors
from minion_daemon.backend.pg import default_backoff
from minion_daemon.backend.unique import UNIQUE_JOBS_VERSION
from minion_daemon.errors import BackendError, SchemaError
from minion_daemon.model import Backoff, JobInfo, Stats
from minion_daemon.options import Options

AsyncConnection = psycopg.AsyncConnection[DictRow]

#: Connections an async client keeps at most: its statements are short, and a loop that
#: awaits many at once queues them here rather than opening a session each.
DEFAULT_MAX_SIZE: Final = 4


class AsyncPgBackend:
    """Minion's operations for asyncio programs, over a pool of async connections opened on
    first use (so it may be made outside a running loop)."""

    def __init__(
        self,
        settings: ConnectionSettings | str,
        *,
        backoff: Backoff = default_backoff,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        self.settings = ConnectionSettings(settings) if isinstance(settings, str) else settings
        self.backoff = backoff
        self._max_size = max_size
        self._pool: AsyncConnectionPool[AsyncConnection] | None = None
        self._has_schedules: bool | None = None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # Connections

    async def _set_up(self, conn: AsyncConnection) -> None:
        """What ``connections.set_up_session`` does for a blocking connection."""
        if self.settings.transaction_pooling:
            return
        await conn.execute(sql.SESSION_SETUP)
        timeouts = self.settings.timeouts(local=False)
        if timeouts is not None:
            await conn.execute(sql.TIMEOUTS, timeouts)

    async def _opened(self) -> AsyncConnectionPool[AsyncConnection]:
        if self._pool is None:
            pool = AsyncConnectionPool(
                self.settings.conninfo,
                connection_class=AsyncConnection,
                kwargs=self.settings.kwargs(),
                configure=self._set_up,
                min_size=0,
                max_size=self._max_size,
                open=False,
                timeout=float(self.settings.connect_timeout),
            )
            with translate_errors("connect", self.settings.redact):
                await pool.open()
            self._pool = pool
        return self._pool

    @asynccontextmanager
    async def _connection(
        self, operation: str, *, snapshot: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """Lend a connection, translating errors; as ``PgExecutor.connection`` does, inside
        a transaction for a snapshot and behind transaction pooling with timeouts."""
        pool = await self._opened()
        timeouts = self.settings.transaction_timeouts()
        with translate_errors(operation, self.settings.redact):
            async with pool.connection() as conn:
                if timeouts is None and not snapshot:
                    yield conn
                    return
                async with conn.transaction():
                    if snapshot:
                        await conn.execute(sql.READ_SNAPSHOT, prepare=False)
                    if timeouts is not None:
                        await conn.execute(sql.TIMEOUTS, timeouts, prepare=False)
                    yield conn

    async def _rows(self, operation: str, statement: statements.Statement) -> list[DictRow]:
        async with self._connection(operation) as conn:
            cursor = await conn.execute(statement.query, statement.params)
            return await cursor.fetchall()

    async def _rowcount(self, operation: str, statement: statements.Statement) -> int:
        async with self._connection(operation) as conn:
            return (await conn.execute(statement.query, statement.params)).rowcount

    async def _ids(
        self,
        operation: str,
        statement: statements.Statement,
        conn: AsyncCallerConnection | None,
    ) -> list[int]:
        """Run an insert returning ``id``, on the caller's connection inside the caller's
        transaction when given (``PgExecutor.ids_on_caller_connection``)."""
        try:
            if conn is None:
                return [int(row["id"]) for row in await self._rows(operation, statement)]
            return await self._ids_on_caller_connection(operation, statement, conn)
        except BackendError as error:
            if statement.unique and isinstance(error.__cause__, psycopg.errors.UndefinedTable):
                raise SchemaError(
                    f"{operation}: unique jobs need minion-daemon's own tables at version"
                    f" {UNIQUE_JOBS_VERSION}: run `minion-daemon migrate`"
                ) from error
            raise

    async def _ids_on_caller_connection(
        self, operation: str, statement: statements.Statement, conn: AsyncCallerConnection
    ) -> list[int]:
        with translate_errors(operation, self.settings.redact):
            async with conn.cursor(row_factory=dict_row) as cursor:
                try:
                    await cursor.execute(statement.query, statement.params)
                except (
                    psycopg.errors.SerializationFailure,
                    psycopg.errors.DeadlockDetected,
                ) as error:
                    raise BackendError(
                        f"{operation}: {error} (roll back the transaction and retry it)"
                    ) from error
                return [int(row["id"]) for row in await cursor.fetchall()]

    # Jobs

    async def enqueue(
        self,
        task: str,
        args: Sequence[Any] | None = None,
        options: Options = None,
        *,
        conn: AsyncCallerConnection | None = None,
    ) -> int:
        """``PgBackend.enqueue``: one job, on ``conn`` inside its transaction when given."""
        return (await self._ids("enqueue", statements.enqueue(task, args, options), conn))[0]

    async def enqueue_many(
        self,
        jobs: Sequence[tuple[str, Sequence[Any] | None, Options]],
        *,
        conn: AsyncCallerConnection | None = None,
    ) -> list[int]:
        """``PgBackend.enqueue_many``: the ids in the order given."""
        statement = statements.enqueue_many(jobs)
        if statement is None:
            return []
        ids = await self._ids("enqueue_many", statement, conn)
        # A plain batch returns its rows in no promised order; their ids ascend with it.
        return ids if statement.unique else sorted(ids)

    async def job_info(self, job_id: int) -> JobInfo | None:
        """The job's row as ``list_jobs`` shows it; ``None`` when it does not exist."""
        # One statement sees one state: no snapshot transaction (result() polls this).
        async with self._connection("job") as conn:
            statement = statements.job_info(job_id)
            cursor = await conn.execute(statement.query, statement.params, prepare=False)
            row = await cursor.fetchone()
        return None if row is None else cast("JobInfo", row)

    async def finish_job(self, job_id: int, retries: int, result: Any = None) -> bool:
        statement = statements.result("finish_job", "finished", job_id, retries, result)
        return await self._rowcount("finish_job", statement) > 0

    async def record_failure(
        self,
        job_id: int,
        retries: int,
        result: Any = None,
        *,
        backoff: Backoff | None = None,
        retry: bool = True,
    ) -> Literal["failed", "retried"] | None:
        """``PgBackend.record_failure``: the failure and its retry in one transaction."""
        failure, again = statements.record_failure(
            job_id, retries, result, self.backoff if backoff is None else backoff, retry=retry
        )
        async with self._connection("fail_job") as conn, conn.pipeline():
            failed = await conn.execute(failure.query, failure.params)
            retried = None if again is None else await conn.execute(again.query, again.params)
        return statements.failure_outcome(
            failed.rowcount, None if retried is None else retried.rowcount
        )

    async def retry_job(self, job_id: int, retries: int, options: Options = None) -> bool:
        return await self._rowcount("retry_job", statements.retry_job(job_id, retries, options)) > 0

    async def remove_job(self, job_id: int) -> bool:
        return await self._rowcount("remove_job", statements.remove_job(job_id)) > 0

    async def note(self, job_id: int, merge: Mapping[str, Any]) -> bool:
        return await self._rowcount("note", statements.note(job_id, merge)) > 0

    # The rest of a client's needs

    async def broadcast(
        self, command: str, args: Sequence[Any] | None = None, ids: Sequence[int] | None = None
    ) -> bool:
        return await self._rowcount("broadcast", statements.broadcast(command, args, ids)) > 0

    async def lock(self, name: str, duration: int, options: Options = None) -> bool:
        rows = await self._rows("lock", statements.lock(name, duration, options))
        return bool(rows[0]["locked"])

    async def unlock(self, name: str) -> bool:
        return await self._rowcount("unlock", statements.unlock(name)) > 0

    async def stats(self) -> Stats:
        """``PgBackend.stats``, from one snapshot."""
        if self._has_schedules is None:
            async with self._connection("stats") as conn:
                found = await (await conn.execute(sql.HAS_SCHEDULES)).fetchone()
            self._has_schedules = bool(found and found["present"])
        query = sql.STATS_WITH_SCHEDULES if self._has_schedules else sql.STATS
        async with self._connection("stats", snapshot=True) as conn:
            cursor = await conn.execute(query, {"limit": estimates.count_limit()})
            row = await cursor.fetchone()
            assert row is not None, "a SELECT without FROM returns one row"
            for state in ("failed", "finished"):
                counted = row[f"{state}_jobs"]
                if not estimates.is_exact(counted):
                    plan = await conn.execute(sql.ESTIMATE_JOBS, {"state": state}, prepare=False)
                    estimate = await plan.fetchone()
                    assert estimate is not None, "EXPLAIN returns the plan"
                    row[f"{state}_jobs"] = max(estimates.plan_rows(estimate), counted)
        row["inactive_workers"] = row["workers"] - row["active_workers"]
        return cast("Stats", row)
