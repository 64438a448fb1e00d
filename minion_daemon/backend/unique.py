"""Unique jobs, beyond Perl: while a job enqueued with a key is inactive or active (or, with
``unique_for``, was created within that many seconds), enqueueing with the key again returns
that job's id and creates nothing.

Which job holds a key lives in a table of our own (``minion_daemon_unique_jobs``,
``migrations/minion_daemon.sql`` version 2); whether it still holds it is read from
``minion_jobs`` at each enqueue, because Perl's workers finish, fail and retry jobs, and
Perl's repair removes them, without a look at our table. A key whose job ended (or is gone)
is taken over by the next enqueue with it.

One statement claims the keys and inserts the jobs, so it is atomic on its own and inside a
caller's transaction alike; concurrent enqueuers of one key queue up on its row. See
``_CLAIM_KEYS`` for why the statements are shaped as they are.
"""

from __future__ import annotations

from typing import Any, Final

from minion_daemon.backend.caller import CallerConnection
from minion_daemon.backend.executor import PgExecutor
from minion_daemon.backend.sql import JOB_COLUMNS, JOB_VALUES, JOB_VALUES_FROM_JSON

#: The version of our own tables (mojo_migrations ``minion_daemon``) that has the keys.
UNIQUE_JOBS_VERSION: Final = 2

# How both statements below claim a key. Each job draws its id from the jobs' sequence first
# (as the column's default would: `minion_jobs_id_seq` is the name PostgreSQL gives the
# sequence of Minion's BIGSERIAL id), so that a key row can name the job before it exists; the
# job is inserted only when the key row the statement returns names it, because the key was
# free (the row inserted) or its holder had let go of it (the row taken over). A held key's
# row is updated all the same, to what it was: RETURNING then gives the holder, which a plain
# SELECT, on a snapshot that may predate the holder, could not see. That row lock is also
# what makes a second enqueuer of the key wait until the first one's transaction ends (the
# caller's own included) and then see its outcome.
#
# Whether the holder still holds the key is judged on `held`, the key row as it is now (the
# latest committed version, which ON CONFLICT locks even when the statement's snapshot
# predates it); `excluded` is the row this enqueue proposed, `claims` its (id, key,
# unique_for).
# - A key row written after this statement's snapshot (by a concurrent enqueue that we waited
#   for) names a job this snapshot cannot see: a job created just now, so it holds the key.
#   Comparing the row this snapshot sees with the locked one tells that case apart from a job
#   that is gone. (Without it, 20 racing processes made 919 jobs of one key.)
# - Otherwise the job holds the key while it is active, or inactive and not expired, or was
#   created within this enqueue's `unique_for` (NULL: no window). `created` must match too: a
#   job id seen again after Minion's reset (which restarts the ids) belongs to another job.
# OFFSET 0 keeps the decision a sub-plan of its own, evaluated once for both columns.
_CLAIM_KEYS: Final = """
INSERT INTO minion_daemon_unique_jobs AS held (key, job_id, created)
SELECT key, id, NOW() FROM claims ORDER BY key
ON CONFLICT (key) DO UPDATE SET (job_id, created) = (
  SELECT CASE WHEN holds THEN held.job_id ELSE excluded.job_id END,
    CASE WHEN holds THEN held.created ELSE excluded.created END
  FROM (
    SELECT (SELECT seen.job_id FROM minion_daemon_unique_jobs AS seen WHERE seen.key = held.key)
        IS DISTINCT FROM held.job_id
      OR EXISTS (
        SELECT FROM minion_jobs AS job
        WHERE job.id = held.job_id AND job.created = held.created
          AND (job.state = 'active'
            OR (job.state = 'inactive' AND (job.expires IS NULL OR job.expires > NOW()))
            OR job.created > NOW() - INTERVAL '1 second'
              * (SELECT claim.unique_for FROM claims AS claim WHERE claim.id = excluded.job_id))
      ) AS holds
    OFFSET 0
  ) AS decision
)
RETURNING key, job_id"""

# One job, with ENQUEUE's parameters and `unique`, `unique_for`: the id of the job holding the
# key, which is the new job's when it was inserted. Prepared: its shape never changes, and
# planning it anew cost as much as running it.
ENQUEUE_UNIQUE: Final = f"""
WITH claims AS (
  SELECT nextval('minion_jobs_id_seq') AS id, %(unique)s::text AS key,
    %(unique_for)s::float8 AS unique_for
), claimed AS ({_CLAIM_KEYS}
), inserted AS (
  INSERT INTO minion_jobs (id, {JOB_COLUMNS})
  SELECT id, {JOB_VALUES}
  FROM claims WHERE id IN (SELECT job_id FROM claimed)
)
SELECT job_id AS id FROM claimed
"""

# Jobs as ENQUEUE_MANY takes them (a JSONB array of params.job_fields), some with a key; the
# ids in the order given, each key's holder where it is held. A key given twice in a batch is
# claimed once, by its first job, and the others get that job's id. The key rows are written
# in key order, so concurrent batches lock them in the same order and cannot deadlock.
ENQUEUE_UNIQUE_MANY: Final = f"""
WITH batch AS (
  SELECT job, position, nextval('minion_jobs_id_seq') AS id
  FROM jsonb_array_elements(%(jobs)s::jsonb) WITH ORDINALITY AS batch(job, position)
), claims AS (
  SELECT DISTINCT ON (job->>'unique') id, job->>'unique' AS key,
    (job->>'unique_for')::float8 AS unique_for
  FROM batch WHERE job->>'unique' IS NOT NULL
  ORDER BY job->>'unique', position
), claimed AS ({_CLAIM_KEYS}
), inserted AS (
  INSERT INTO minion_jobs (id, {JOB_COLUMNS})
  SELECT id, {JOB_VALUES_FROM_JSON}
  FROM batch
  WHERE job->>'unique' IS NULL OR id IN (SELECT job_id FROM claimed)
  ORDER BY position
)
SELECT COALESCE(claimed.job_id, batch.id) AS id
FROM batch LEFT JOIN claimed ON claimed.key = batch.job->>'unique'
ORDER BY batch.position
"""

# Repair: forget the keys whose job is gone (removed by repair, Perl's or ours, or by hand),
# which the next enqueue would take over anyway; the table would otherwise keep every key
# ever used. A row taken over meanwhile names another job, which the join's recheck of the
# locked row sees, so it stays.
FORGET_GONE_KEYS: Final = """
WITH gone AS (
  SELECT key, job_id FROM minion_daemon_unique_jobs AS held
  WHERE NOT EXISTS (
    SELECT FROM minion_jobs AS job WHERE job.id = held.job_id AND job.created = held.created
  )
)
DELETE FROM minion_daemon_unique_jobs AS held USING gone
WHERE held.key = gone.key AND held.job_id = gone.job_id
"""

FORGET_ALL_KEYS: Final = "TRUNCATE minion_daemon_unique_jobs"


class UniqueOperations(PgExecutor):
    """Enqueue jobs with keys; forget keys on repair and reset."""

    def enqueue_unique(self, params: dict[str, Any], conn: CallerConnection | None) -> int:
        """Insert the job of ``params`` (``ENQUEUE_UNIQUE``'s) unless its key is held (on
        ``conn`` when given); the id of the job holding the key, the new one's if inserted."""
        self.require_own_tables("enqueue", "unique jobs", UNIQUE_JOBS_VERSION)
        if conn is not None:
            return self.ids_on_caller_connection("enqueue", conn, ENQUEUE_UNIQUE, params)[0]
        return int(self.rows("enqueue", ENQUEUE_UNIQUE, params, prepare=True)[0]["id"])

    def enqueue_unique_many(
        self, params: dict[str, Any], conn: CallerConnection | None
    ) -> list[int]:
        """:meth:`enqueue_unique` for the batch of ``ENQUEUE_UNIQUE_MANY``'s ``params`` (jobs
        as ``params.job_fields`` writes them, some with ``unique``): every job's id, or its
        key's holder, in the order given."""
        self.require_own_tables("enqueue_many", "unique jobs", UNIQUE_JOBS_VERSION)
        if conn is not None:
            return self.ids_on_caller_connection("enqueue_many", conn, ENQUEUE_UNIQUE_MANY, params)
        return [int(row["id"]) for row in self.rows("enqueue_many", ENQUEUE_UNIQUE_MANY, params)]

    def forget_gone_keys(self) -> int:
        """Delete the keys whose job no longer exists; how many."""
        if self.own_schema_version < UNIQUE_JOBS_VERSION:
            return 0
        return self.rowcount("repair", FORGET_GONE_KEYS)

    def forget_all_keys(self) -> None:
        if self.own_schema_version >= UNIQUE_JOBS_VERSION:
            self.rowcount("reset", FORGET_ALL_KEYS)
