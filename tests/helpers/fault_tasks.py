"""The task of the fault tests, and the tables that let a test check every job against its runs.

``record_run`` writes ``(job id, retries, token)`` to ``runs`` on a connection of its own, then
returns the token, a value unique to that run. A finished job's result must be the token of
the run of its final ``retries``: a stale run (one repair gave up on, or one killed after it
wrote its row) cannot have recorded it. The ``finishes`` table, filled by a trigger, holds
every transition of a job to ``finished``, so a job recorded finished twice shows as two rows.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import psycopg

INSTRUMENT = """
CREATE TABLE runs (
  job_id bigint NOT NULL, retries int NOT NULL, token text NOT NULL, pid int NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE finishes (
  job_id bigint NOT NULL, retries int NOT NULL, result jsonb,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION record_finish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO finishes (job_id, retries, result) VALUES (NEW.id, NEW.retries, NEW.result);
  RETURN NULL;
END
$$;
CREATE TRIGGER record_finish AFTER UPDATE OF state ON minion_jobs
  FOR EACH ROW WHEN (NEW.state = 'finished') EXECUTE FUNCTION record_finish();
"""

#: Entry points of the fault tests' task distribution: ``name = module:function``.
ENTRY_POINTS = {"record_run": "helpers.fault_tasks:record_run"}


#: What must never be found once the jobs settled, each with the query that finds it.
VIOLATIONS = {
    "an attempt (job, retries) ran twice": (
        "SELECT job_id, retries FROM runs GROUP BY 1, 2 HAVING count(*) > 1"
    ),
    "a run of retries the job never reached": (
        "SELECT r.job_id, r.retries FROM runs r JOIN minion_jobs j ON j.id = r.job_id"
        " WHERE r.retries > j.retries"
    ),
    "a job recorded finished twice": (
        "SELECT job_id, count(*) FROM finishes GROUP BY 1 HAVING count(*) > 1"
    ),
    "a finished job whose result is not its final run's token": (
        "SELECT j.id, j.retries, j.result FROM minion_jobs j"
        " LEFT JOIN runs r ON r.job_id = j.id AND r.retries = j.retries"
        " LEFT JOIN finishes f ON f.job_id = j.id"
        " WHERE j.state = 'finished' AND (r.token IS NULL OR j.result <> to_jsonb(r.token)"
        " OR f.retries IS DISTINCT FROM j.retries OR f.result <> j.result)"
    ),
    "a finish recorded for a job that is not finished": (
        "SELECT f.job_id FROM finishes f JOIN minion_jobs j ON j.id = f.job_id"
        " WHERE j.state <> 'finished'"
    ),
}


def violations(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each of :data:`VIOLATIONS` found in the database, with (up to 5 of) its rows."""
    found = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, query in VIOLATIONS.items():
            rows = conn.execute(query).fetchall()
            if rows:
                found[name] = rows[:5]
    return found


def double_finishes(dsn: str) -> int:
    """Jobs recorded finished more than once."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM (SELECT job_id FROM finishes GROUP BY 1 HAVING count(*) > 1) d"
        ).fetchone()
    return int(row[0]) if row else 0


def instrument(dsn: str) -> None:
    """Add ``runs`` and ``finishes`` to a database that has Minion's schema."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(INSTRUMENT)


def record_run(job: Any, seconds: float = 0.0) -> str:
    """Write this run's row, sleep ``seconds``, return the run's token."""
    token = uuid.uuid4().hex
    # The daemon's own DSN, on a connection that is not the backend's.
    with psycopg.connect(job.minion.backend.settings.conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (job_id, retries, token, pid) VALUES (%s, %s, %s, %s)",
            (job.id, job.retries, token, os.getpid()),
        )
    if seconds:
        time.sleep(seconds)
    return token
