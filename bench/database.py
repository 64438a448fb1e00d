"""The PostgreSQL server the bench runs on, its fresh databases, and the bench's own SQL.

The server is ``$MINION_DAEMON_BENCH_DSN`` (a libpq DSN or URL naming any database of it),
else the local one at 127.0.0.1:5432 as ``postgres``. Each run creates
``minion_daemon_bench_<pid>`` (and ``..._perl`` at schema 23 for Debian's Perl Minion 10.25,
which refuses a newer schema) and drops them at the end; databases of runs that were killed
are dropped by the next run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import psycopg
from psycopg import conninfo as libpq
from psycopg import sql
from psycopg.rows import dict_row

from minion_daemon.backend import PgBackend

DEFAULT_SERVER: Final = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PREFIX: Final = "minion_daemon_bench_"

# Statistics as a busy queue's table has them once autovacuum analyzed it: without any, the
# planner guesses and sorts every inactive job for each claim (tens of ms). TRUNCATE keeps them.
SEED_STATISTICS: Final = """
INSERT INTO minion_jobs (args, delayed, finished, priority, state, task)
SELECT '[]', NOW(), CASE WHEN n % 10 = 0 THEN NULL ELSE NOW() END, 0,
  (CASE WHEN n % 10 = 0 THEN 'inactive' ELSE 'finished' END)::minion_state, 'noop'
FROM generate_series(1, 10000) AS n
"""

RESET: Final = (
    "TRUNCATE minion_jobs, minion_locks, minion_workers, minion_daemon_unique_jobs"
    " RESTART IDENTITY"
)

# Jobs that ended over the last 47 hours (inside Minion's 2-day retention, so repair keeps
# them), ids in time order, one in 250 failed: rows first..last of total.
ENDED_JOBS: Final = """
INSERT INTO minion_jobs
  (args, attempts, created, delayed, finished, priority, queue, result, started, state, task,
   worker)
SELECT '[]', 1, t - INTERVAL '2 seconds', t - INTERVAL '2 seconds', t, 0, 'default',
  CASE WHEN n %% 250 = 1 THEN '"Bench failure"'::jsonb ELSE 'null'::jsonb END,
  t - INTERVAL '1 second',
  (CASE WHEN n %% 250 = 1 THEN 'failed' ELSE 'finished' END)::minion_state, 'noop', 1
FROM (
  SELECT n, NOW() - INTERVAL '47 hours' + n * INTERVAL '47 hours' / %(total)s::int AS t
  FROM generate_series(%(first)s::int, %(last)s::int) AS n
) AS ended
"""

WAITING_JOBS: Final = """
INSERT INTO minion_jobs (args, delayed, priority, queue, task)
SELECT '[]', NOW(), 0, 'default', 'noop' FROM generate_series(1, %(count)s::int)
"""

ACTIVITY: Final = """
SELECT xact_commit AS commits, sessions FROM pg_stat_database WHERE datname = current_database()
"""

UNFINISHED: Final = """
SELECT COUNT(*) AS n FROM minion_jobs
WHERE state IN ('inactive', 'active') AND (%(task)s::text IS NULL OR task = %(task)s::text)
"""

OUTCOMES: Final = """
SELECT COUNT(*) FILTER (WHERE state = 'finished') AS finished,
  COUNT(*) FILTER (WHERE state = 'failed') AS failed,
  EXTRACT(EPOCH FROM MAX(finished) - MIN(started))::float8 AS span
FROM minion_jobs WHERE task = %(task)s::text
"""


_DROP: Final = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def _alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


class Server:
    """Creates and drops the run's databases."""

    def __init__(self, dsn: str | None = None) -> None:
        self.admin_dsn = dsn or os.environ.get("MINION_DAEMON_BENCH_DSN") or DEFAULT_SERVER
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10)

    def version(self) -> str:
        with self._admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def settings(self) -> dict[str, str]:
        names = ("synchronous_commit", "fsync", "shared_buffers", "wal_level", "max_connections")
        with self._admin() as conn:
            show = "SELECT current_setting(%s)"
            rows = [conn.execute(show, (name,)).fetchone() for name in names]
        return {name: str(row[0]) if row else "?" for name, row in zip(names, rows, strict=True)}

    def create(self, suffix: str = "", schema: int | None = None) -> Database:
        """A fresh database migrated to ``schema`` (default: the latest), with seeded stats."""
        name = f"{PREFIX}{os.getpid()}{suffix}"
        with self._admin() as conn:
            conn.execute(_DROP.format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        database = Database(libpq.make_conninfo(self.admin_dsn, dbname=name))
        backend = PgBackend(database.dsn, pooled=False)
        try:
            backend.migrate(schema)
        finally:
            backend.close()
        database.seed_statistics()
        return database

    def drop_stale(self) -> None:
        """Drop the databases of bench runs on this machine whose process is gone."""
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
            ).fetchall()
        for (name,) in rows:
            if not _alive(str(name)[len(PREFIX) :].split("_")[0]):
                self._drop(str(name))

    def drop_created(self) -> None:
        for name in self.created:
            self._drop(name)
        self.created.clear()

    def _drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(_DROP.format(sql.Identifier(name)))


class Database:
    """One bench database: its DSN (and URL, for Perl) and the bench's own statements."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        #: Transactions of the bench's own on this database (its polling), for :meth:`activity`.
        self.own_transactions = 0

    @property
    def url(self) -> str:
        """The database as a postgresql:// URL, the form Perl's Mojo::Pg takes."""
        params = libpq.conninfo_to_dict(self.dsn)
        user = quote(str(params.get("user", "postgres")), safe="")
        password = params.get("password")
        auth = f"{user}:{quote(str(password), safe='')}" if password else user
        host = quote(str(params.get("host", "localhost")), safe="")
        port = f":{params['port']}" if params.get("port") else ""
        return f"postgresql://{auth}@{host}{port}/{quote(str(params['dbname']), safe='')}"

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        """The bench's one connection to this database (made again if it broke)."""
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row)
        yield self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def execute(self, statement: Any, params: dict[str, Any] | None = None) -> None:
        self.all(statement, params, fetch=False)

    def one(self, statement: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        rows = self.all(statement, params)
        assert rows, "the statement returns a row"
        return rows[0]

    def all(
        self, statement: Any, params: dict[str, Any] | None = None, *, fetch: bool = True
    ) -> list[dict[str, Any]]:
        """Run one statement (one transaction: the connection autocommits)."""
        with self.connect() as conn:
            cursor = conn.execute(statement, params)
            self.own_transactions += 1
            return cursor.fetchall() if fetch else []

    def activity(self) -> dict[str, int]:
        """Commits and sessions (connections) of this database so far, from pg_stat_database,
        less the bench's own transactions. Backends report at exit, or when idle at most once
        a second: read it after the processes of interest have exited."""
        try:
            self.execute("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15+
            self.execute("SELECT pg_stat_clear_snapshot()")
            row = self.one(ACTIVITY)  # sessions: PostgreSQL 14+
        except psycopg.Error:
            return {}
        return {"commits": int(row["commits"]) - self.own_transactions,
                "sessions": int(row["sessions"])}

    def seed_statistics(self) -> None:
        self.execute(SEED_STATISTICS)
        self.execute("ANALYZE minion_jobs")
        self.execute(RESET)

    def reset(self) -> None:
        """Empty the tables (statistics stay) and checkpoint, so each run starts alike."""
        self.execute(RESET)
        self.execute("CHECKPOINT")

    def vacuum_analyze(self) -> None:
        self.execute("VACUUM (ANALYZE) minion_jobs")

    def unfinished(self, task: str | None = None) -> int:
        """Jobs inactive or active: all of them, or those of ``task``."""
        return int(self.one(UNFINISHED, {"task": task})["n"])

    def outcomes(self, task: str) -> dict[str, Any]:
        return self.one(OUTCOMES, {"task": task})

    def worker_pids(self) -> list[int]:
        rows = self.all("SELECT pid FROM minion_workers ORDER BY id")
        return [int(row["pid"]) for row in rows]
