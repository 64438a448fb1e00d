"""Every SQL statement of the backend, by name, in the order of Minion::Backend::Pg.

Statements take named parameters only; nothing is ever formatted into them. Parameters are cast
explicitly because psycopg binds them server-side, where ``NULL`` and empty arrays carry no type.
Statements whose filters are optional (``(%(x)s IS NULL OR ...)``) are run unprepared by the
backend, so that PostgreSQL plans them with the actual values and can use the index a filter
needs, instead of settling on one generic plan for every combination; the worker's claim, whose
filters are the same on every call, is the exception.
"""

from __future__ import annotations

from typing import Final, LiteralString

BROADCAST: Final = """
UPDATE minion_workers SET inbox = inbox || %(message)s::jsonb
WHERE (%(ids)s::bigint[] = '{}' OR id = ANY(%(ids)s::bigint[]))
"""

# The claim: lock the single best runnable candidate (SKIP LOCKED, so concurrent workers never
# wait on each other) and mark it active in the same statement. Parents block while they are
# active, inactive and unexpired, or failed (unless the job is lax); parents that were removed,
# finished, or expired while inactive count as done.
_RUNNABLE_CANDIDATES = """
  SELECT id FROM minion_jobs AS j
  WHERE state = 'inactive' AND delayed <= NOW() AND (expires IS NULL OR expires > NOW())
    AND id = COALESCE(%(id)s::bigint, id)
    AND priority >= COALESCE(%(min_priority)s::int, priority)
    AND queue = ANY(%(queues)s::text[])
    AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
    AND (parents = '{}' OR NOT EXISTS (
      SELECT 1 FROM minion_jobs AS p
      WHERE p.id = ANY(j.parents) AND (
        p.state = 'active'
        OR (p.state = 'failed' AND NOT j.lax)
        OR (p.state = 'inactive' AND (p.expires IS NULL OR p.expires > NOW()))
      )
    ))
  ORDER BY priority DESC, id
"""
_CLAIM = "UPDATE minion_jobs SET started = NOW(), state = 'active', worker = %(worker)s::bigint"
# The enqueuer's trace context travels with the claim (minion_daemon/tracing.py), as text.
_CLAIMED = """RETURNING id, args, retries, task, queue,
  GREATEST(EXTRACT(EPOCH FROM started - delayed), 0)::float8 AS latency,
  CASE WHEN notes ? 'traceparent' THEN JSONB_STRIP_NULLS(JSONB_BUILD_OBJECT(
    'traceparent', notes ->> 'traceparent', 'tracestate', notes ->> 'tracestate')) END
    AS trace_context"""
DEQUEUE: Final = f"""
{_CLAIM}
WHERE id = ({_RUNNABLE_CANDIDATES}  LIMIT 1
  FOR UPDATE SKIP LOCKED
)
{_CLAIMED}
"""

# Batched mode: up to %(limit)s of the best candidates in one statement, handed out best first.
DEQUEUE_MANY: Final = f"""
WITH claimed AS (
{_CLAIM}
WHERE id = ANY(ARRAY({_RUNNABLE_CANDIDATES}  LIMIT %(limit)s::int
  FOR UPDATE SKIP LOCKED
))
{_CLAIMED}, priority
)
SELECT id, args, retries, task, queue, latency, trace_context FROM claimed
ORDER BY priority DESC, id
"""

# A worker's turn in one statement and one commit: record the successes of the jobs that
# ended (fenced like UPDATE_RESULT, and with the job process's minion_pid note when it was not
# written yet), write the minion_pid notes of jobs that started (PostgreSQL runs a
# data-modifying WITH whether or not the query reads it), and claim up to %(limit)s
# jobs (0: none). The claim sees the statement's snapshot, so a child of a job finished here
# becomes runnable for the next claim, not this one.
SETTLE_AND_CLAIM: Final = f"""
WITH finished AS (
  UPDATE minion_jobs AS j SET finished = NOW(), result = r.result, state = 'finished',
    notes = CASE WHEN r.pid IS NULL THEN j.notes
      ELSE j.notes || JSONB_BUILD_OBJECT('minion_pid', r.pid) END
  FROM JSONB_TO_RECORDSET(%(finished)s::jsonb) AS r(id bigint, retries int, result jsonb, pid int)
  WHERE j.id = r.id AND j.retries = r.retries AND j.state = 'active'
  RETURNING j.id
), noted AS (
  UPDATE minion_jobs AS j SET notes = j.notes || JSONB_BUILD_OBJECT('minion_pid', n.pid)
  FROM JSONB_TO_RECORDSET(%(pids)s::jsonb) AS n(id bigint, pid int)
  WHERE j.id = n.id
  RETURNING j.id
), claimed AS (
{_CLAIM}
WHERE id = ANY(ARRAY({_RUNNABLE_CANDIDATES}  LIMIT %(limit)s::int
  FOR UPDATE SKIP LOCKED
))
{_CLAIMED}, priority
)
SELECT id, args, retries, task, queue, latency, trace_context, priority FROM claimed
UNION ALL
SELECT id, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM finished
"""

LISTEN: Final = 'LISTEN "minion.job"'

# The server's connection slots, and those a role without superuser rights cannot take:
# superuser_reserved_connections, plus reserved_connections from PostgreSQL 16 on (missing
# before: current_setting's second argument then gives NULL).
SERVER_CONNECTIONS: Final = """
SELECT current_setting('max_connections')::int AS max_connections,
  current_setting('superuser_reserved_connections')::int
  + COALESCE(current_setting('reserved_connections', true)::int, 0) AS reserved
"""

# Run on every new connection. JIT compilation pays off for long analytical queries, which the
# backend never runs; its planner takes some of our statements (the batched claim, a listing
# with its children) for expensive and compiled them on every call, for 15 to 40 ms each.
# Set per session, not in the startup packet, which poolers such as PgBouncer refuse.
SESSION_SETUP: Final = "SET jit = off"
# Optional bounds (milliseconds; NULL keeps the server's setting), for the supervisor: for the
# session, or (``local``, behind transaction pooling) for the transaction alone.
TIMEOUTS: Final = """
SELECT SET_CONFIG('lock_timeout',
         COALESCE(%(lock)s::int::text, CURRENT_SETTING('lock_timeout')), %(local)s::bool),
       SET_CONFIG('statement_timeout',
         COALESCE(%(statement)s::int::text, CURRENT_SETTING('statement_timeout')), %(local)s::bool)
"""

# A new job's columns, and their values from ``params.enqueue_params``: the one reading of
# ENQUEUE and of a unique job's insert (backend/unique.py).
JOB_COLUMNS: Final = "args, attempts, delayed, expires, lax, notes, parents, priority, queue, task"
JOB_VALUES: Final = """
  %(args)s::jsonb, %(attempts)s::int, NOW() + INTERVAL '1 second' * %(delay)s::float8,
  CASE WHEN %(expire)s::bigint IS NOT NULL
    THEN NOW() + INTERVAL '1 second' * %(expire)s::bigint END,
  %(lax)s::bool, %(notes)s::jsonb, %(parents)s::bigint[], %(priority)s::int, %(queue)s::text,
  %(task)s::text"""

ENQUEUE: Final = f"""
INSERT INTO minion_jobs ({JOB_COLUMNS})
VALUES ({JOB_VALUES}
)
RETURNING id
"""

# JOB_VALUES read from ``job``, one JSONB object as ``params.job_fields`` writes it: the one
# reading of ENQUEUE_MANY and of a batch of unique jobs. Jobs without parents skip the
# sub-select that unpacks them: run for every row, it took 4 of the 15 ms a batch of 1000
# spent in the database.
JOB_VALUES_FROM_JSON: Final = """job->'args', (job->>'attempts')::int,
  NOW() + INTERVAL '1 second' * (job->>'delay')::float8,
  CASE WHEN job->>'expire' IS NOT NULL
    THEN NOW() + INTERVAL '1 second' * (job->>'expire')::bigint END,
  (job->>'lax')::bool, job->'notes',
  CASE WHEN job->'parents' = '[]' THEN '{}'::bigint[]
    ELSE ARRAY(SELECT jsonb_array_elements_text(job->'parents')::bigint) END,
  (job->>'priority')::int, job->>'queue', job->>'task'"""

# Many jobs in one round trip: one JSONB array, one row per element, inserted in array order so
# that the ids, which the sequence hands out in insertion order, ascend with it.
ENQUEUE_MANY: Final = f"""
INSERT INTO minion_jobs ({JOB_COLUMNS})
SELECT {JOB_VALUES_FROM_JSON}
FROM jsonb_array_elements(%(jobs)s::jsonb) WITH ORDINALITY AS batch(job, position)
ORDER BY position
RETURNING id
"""

# finish_job and fail_job: fenced by (id, retries, state), so a stale holder changes nothing.
UPDATE_RESULT: Final = """
UPDATE minion_jobs SET finished = NOW(), result = %(result)s::jsonb, state = %(state)s::minion_state
WHERE id = %(id)s::bigint AND retries = %(retries)s::int AND state = 'active'
RETURNING attempts
"""

# history: per point of the 24, the jobs that ended in its clock hour (the session time zone's,
# as Perl's EXTRACT(DAY/HOUR) grouping) and after NOW() - 23 hours, so the first point counts
# only the end of its hour, as in Perl. Perl groups the whole window and sorts it (at 489k rows
# the sort spilled to disk); here each hour and state is counted on its own along the
# (finished, state) index of schema 24, both bounds and the state being index conditions: the
# index skips the other states itself and nothing is computed per job. Exact, and linear in the
# jobs of the window (about 45 ms for 489k, bench/). A DST repeat of a clock hour is counted as
# two hours, where Perl merges them.
HISTORY: Final = """
SELECT EXTRACT(EPOCH FROM p.ts)::float8 AS epoch,
  (SELECT COUNT(*) FROM minion_jobs
    WHERE finished >= p.hour AND finished < p.hour + INTERVAL '1 hour' AND finished > p.since
      AND state = 'failed')::int AS failed_jobs,
  (SELECT COUNT(*) FROM minion_jobs
    WHERE finished >= p.hour AND finished < p.hour + INTERVAL '1 hour' AND finished > p.since
      AND state = 'finished')::int AS finished_jobs
FROM (
  SELECT ts, DATE_TRUNC('hour', ts) AS hour, NOW() - INTERVAL '23 hours' AS since
  FROM GENERATE_SERIES(NOW() - INTERVAL '23 hours', NOW(), INTERVAL '1 hour') AS ts
) AS p
ORDER BY p.ts
"""

# history below schema 24, where nothing indexes `finished`: one pass over the table (48 hourly
# counts would be 48 passes), grouped by clock hour in a hash table rather than sorted.
HISTORY_SCAN: Final = """
SELECT EXTRACT(EPOCH FROM ts)::float8 AS epoch,
  COALESCE(failed_jobs, 0)::int AS failed_jobs, COALESCE(finished_jobs, 0)::int AS finished_jobs
FROM GENERATE_SERIES(NOW() - INTERVAL '23 hours', NOW(), INTERVAL '1 hour') AS ts
LEFT JOIN (
  SELECT DATE_TRUNC('hour', finished) AS hour,
    COUNT(*) FILTER (WHERE state = 'failed') AS failed_jobs,
    COUNT(*) FILTER (WHERE state = 'finished') AS finished_jobs
  FROM minion_jobs
  WHERE finished > NOW() - INTERVAL '23 hours'
  GROUP BY hour
) AS ended ON ended.hour = DATE_TRUNC('hour', ts)
ORDER BY ts
"""

_JOB_FILTER: Final = """
WHERE (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
  AND (%(notes)s::text[] IS NULL OR notes ?| %(notes)s::text[])
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
  AND (%(states)s::minion_state[] IS NULL OR state = ANY(%(states)s::minion_state[]))
  AND (%(tasks)s::text[] IS NULL OR task = ANY(%(tasks)s::text[]))
  AND (state != 'inactive' OR expires IS NULL OR expires > NOW())
"""

# The page and the total are separate statements. Perl's single statement with COUNT(*) OVER()
# materialises every matching row, children included, before the LIMIT applies; at millions of
# rows that took tens of seconds and exhausted temp space (Minion #139). Here the page is read
# backwards along the primary key and stops at LIMIT, and `children` is looked up in an outer
# query for the page's rows only: in the page query itself it ran for every row the OFFSET
# skipped too (2.7 s for offset 500,000 at 1M rows).
LIST_JOBS: Final = (
    """
SELECT id, args, attempts,
  ARRAY(SELECT c.id FROM minion_jobs AS c WHERE c.parents @> ARRAY[page.id] ORDER BY c.id)
    AS children,
  created, delayed, expires, finished, lax, notes, parents, priority, queue, result, retried,
  retries, started, state, task, time, worker
FROM (
  SELECT id, args, attempts,
    EXTRACT(EPOCH FROM created)::float8 AS created, EXTRACT(EPOCH FROM delayed)::float8 AS delayed,
    EXTRACT(EPOCH FROM expires)::float8 AS expires,
    EXTRACT(EPOCH FROM finished)::float8 AS finished, lax, notes, parents, priority, queue,
    result, EXTRACT(EPOCH FROM retried)::float8 AS retried, retries,
    EXTRACT(EPOCH FROM started)::float8 AS started, state::text AS state, task,
    EXTRACT(EPOCH FROM NOW())::float8 AS time, worker
  FROM minion_jobs AS j
"""
    + _JOB_FILTER
    + """
  ORDER BY id DESC
  LIMIT %(limit)s::bigint OFFSET %(offset)s::bigint
) AS page
ORDER BY id DESC
"""
)

# The total of list_jobs stops at %(count_limit)s rows: an exact count of every job took longer
# than the page (240 ms at a million). Past it, the total is ESTIMATE_LISTED_JOBS.
COUNT_JOBS: Final = (
    "SELECT COUNT(*)::bigint AS total FROM (SELECT 1 FROM minion_jobs"
    + _JOB_FILTER
    + "LIMIT %(count_limit)s::bigint) AS counted"
)

ESTIMATE_LISTED_JOBS: Final = "EXPLAIN (FORMAT JSON) SELECT 1 FROM minion_jobs" + _JOB_FILTER

_LOCK_FILTER: Final = """
WHERE expires > NOW() AND (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
"""

LIST_LOCKS: Final = (
    "SELECT id, name, EXTRACT(EPOCH FROM expires)::float8 AS expires FROM minion_locks"
    + _LOCK_FILTER
    + "ORDER BY id DESC LIMIT %(limit)s::bigint OFFSET %(offset)s::bigint"
)

COUNT_LOCKS: Final = "SELECT COUNT(*)::bigint AS total FROM minion_locks" + _LOCK_FILTER

_WORKER_FILTER: Final = """
WHERE (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
"""

LIST_WORKERS: Final = (
    """
SELECT id, host, pid, status,
  EXTRACT(EPOCH FROM notified)::float8 AS notified, EXTRACT(EPOCH FROM started)::float8 AS started,
  ARRAY(
    SELECT j.id FROM minion_jobs AS j
    WHERE j.state = 'active' AND j.worker = w.id ORDER BY j.id
  ) AS jobs
FROM minion_workers AS w
"""
    + _WORKER_FILTER
    + "ORDER BY id DESC LIMIT %(limit)s::bigint OFFSET %(offset)s::bigint"
)

COUNT_WORKERS: Final = "SELECT COUNT(*)::bigint AS total FROM minion_workers" + _WORKER_FILTER

LOCK: Final = "SELECT minion_lock(%(name)s::text, %(duration)s::int, %(limit)s::int) AS locked"

NOTE: Final = """
UPDATE minion_jobs SET notes = JSONB_STRIP_NULLS(notes || %(merge)s::jsonb)
WHERE id = %(id)s::bigint
"""

RECEIVE: Final = """
UPDATE minion_workers AS new SET inbox = '[]'
FROM (SELECT id, inbox FROM minion_workers WHERE id = %(id)s::bigint FOR UPDATE) AS old
WHERE new.id = old.id AND old.inbox != '[]'
RETURNING old.inbox AS inbox
"""

# A worker reaped by repair re-inserts itself with its old id at its next heartbeat; on
# conflict only the heartbeat and the status change, host, pid and started keep their values.
REGISTER_WORKER: Final = """
INSERT INTO minion_workers (id, host, pid, status)
VALUES (
  COALESCE(%(id)s::bigint, NEXTVAL('minion_workers_id_seq')), %(host)s::text, %(pid)s::int,
  %(status)s::jsonb
)
ON CONFLICT (id) DO UPDATE SET notified = NOW(), status = EXCLUDED.status
RETURNING id
"""

REMOVE_JOB: Final = """
DELETE FROM minion_jobs WHERE id = %(id)s::bigint AND state IN ('inactive', 'failed', 'finished')
"""

REPAIR_MISSING_WORKERS: Final = """
DELETE FROM minion_workers WHERE notified < NOW() - INTERVAL '1 second' * %(seconds)s::float8
"""

# Finished parents of unfinished children stay, or the children would lose their dependency
# (Minion #129, restored in 10.31).
REPAIR_OLD_JOBS: Final = """
DELETE FROM minion_jobs
WHERE id IN (
  SELECT id FROM minion_jobs
  WHERE state = 'finished' AND finished <= NOW() - INTERVAL '1 second' * %(seconds)s::float8
  EXCEPT SELECT UNNEST(parents) AS id FROM minion_jobs WHERE state != 'finished'
)
"""

REPAIR_EXPIRED_JOBS: Final = "DELETE FROM minion_jobs WHERE state = 'inactive' AND expires <= NOW()"

REPAIR_ABANDONED_JOBS: Final = """
SELECT id, retries FROM minion_jobs AS j
WHERE state = 'active' AND queue != 'minion_foreground'
  AND NOT EXISTS (SELECT 1 FROM minion_workers WHERE id = j.worker)
"""

# The jobs of one worker known to be dead (its supervisor reaped it), as REPAIR_ABANDONED_JOBS
# finds them for every worker whose row is gone.
DEAD_WORKER_JOBS: Final = """
SELECT id, retries FROM minion_jobs
WHERE worker = %(id)s::bigint AND state = 'active' AND queue != 'minion_foreground'
"""

REPAIR_STUCK_JOBS: Final = """
UPDATE minion_jobs SET state = 'failed', result = '"Job appears stuck in queue"'
WHERE state = 'inactive' AND delayed + %(seconds)s::float8 * INTERVAL '1 second' < NOW()
"""

RESET_ALL: Final = "TRUNCATE minion_jobs, minion_locks, minion_workers RESTART IDENTITY"
RESET_ALL_WITH_SCHEDULES: Final = (
    "TRUNCATE minion_jobs, minion_locks, minion_schedules, minion_workers RESTART IDENTITY"
)
RESET_LOCKS: Final = "TRUNCATE minion_locks"

RETRY_JOB: Final = """
UPDATE minion_jobs SET
  attempts = COALESCE(%(attempts)s::int, attempts),
  delayed = NOW() + INTERVAL '1 second' * %(delay)s::float8,
  expires = CASE WHEN %(expire)s::bigint IS NOT NULL
    THEN NOW() + INTERVAL '1 second' * %(expire)s::bigint ELSE expires END,
  lax = COALESCE(%(lax)s::bool, lax),
  parents = COALESCE(%(parents)s::bigint[], parents),
  priority = COALESCE(%(priority)s::int, priority),
  queue = COALESCE(%(queue)s::text, queue),
  retried = NOW(), retries = retries + 1, state = 'inactive'
WHERE id = %(id)s::bigint AND retries = %(retries)s::int
"""


# Minion's automatic retry of a failure recorded in the same transaction: its ``finished`` is
# that transaction's NOW(), which tells it from a job someone else failed, so the retry can be
# sent with the failure, without waiting for the failure's row (``attempts``), and does what
# RETRY_JOB does with attempts lowered by one (as Perl's auto_retry_job asks) and a delay.
RETRY_AFTER_FAILURE: Final = """
UPDATE minion_jobs SET attempts = attempts - 1,
  delayed = NOW() + INTERVAL '1 second' * %(delay)s::float8,
  retried = NOW(), retries = retries + 1, state = 'inactive'
WHERE id = %(id)s::bigint AND retries = %(retries)s::int AND state = 'failed'
  AND finished = NOW() AND attempts > 1
"""


def _count_up_to_limit(state: LiteralString) -> LiteralString:
    """The jobs in ``state``, counted along the state index up to %(limit)s rows: the ORDER BY
    keeps the count on the index, whose scan stops at the LIMIT (estimates.py takes over
    past it)."""
    return f"""(SELECT COUNT(*) FROM (
    SELECT 1 FROM minion_jobs WHERE state = '{state}'
    ORDER BY priority DESC, id LIMIT %(limit)s::bigint
  ) AS sample)::bigint"""


# One statement of independent sub-selects, each served by an index (Minion #132/#133). Failed
# and finished jobs, which a busy queue keeps by the million, are counted up to %(limit)s.
_STATS_COLUMNS: Final = f"""
SELECT
  (SELECT COUNT(*) FROM minion_jobs
    WHERE state = 'inactive' AND (expires IS NULL OR expires > NOW()))::bigint AS inactive_jobs,
  (SELECT COUNT(*) FROM minion_jobs WHERE state = 'active')::bigint AS active_jobs,
  {_count_up_to_limit("failed")} AS failed_jobs,
  {_count_up_to_limit("finished")} AS finished_jobs,
  (SELECT COUNT(*) FROM minion_jobs
    WHERE state = 'inactive' AND delayed > NOW())::bigint AS delayed_jobs,
  (SELECT COUNT(*) FROM minion_locks WHERE expires > NOW())::bigint AS active_locks,
  (SELECT COUNT(DISTINCT worker) FROM minion_jobs WHERE state = 'active')::bigint AS active_workers,
  (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM minion_jobs_id_seq)::bigint
    AS enqueued_jobs,
  (SELECT COUNT(*) FROM minion_workers)::bigint AS workers,
  EXTRACT(EPOCH FROM NOW() - PG_POSTMASTER_START_TIME())::float8 AS uptime
"""

STATS: Final = _STATS_COLUMNS

STATS_WITH_SCHEDULES: Final = (
    _STATS_COLUMNS
    + """,
  (SELECT COUNT(*) FROM minion_schedules WHERE NOT paused)::bigint AS schedules,
  (SELECT COUNT(*) FROM minion_schedules WHERE paused)::bigint AS inactive_schedules
"""
)

# The reads of stats, history, the listings and observe: one read-only REPEATABLE READ
# transaction, so every figure comes from one snapshot and one NOW(). (JIT, which compiled
# some of these for longer than they ran, is off for every session: SESSION_SETUP.)
READ_SNAPSHOT: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# observe(), beyond Perl: the metrics round (see backend/observe.py for what is exact and what
# is estimated), in a READ_SNAPSHOT transaction and under a timeout. SET_CONFIG(..., TRUE) is
# SET LOCAL with a parameter.
OBSERVE_TIMEOUT: Final = """
SELECT SET_CONFIG('statement_timeout', %(milliseconds)s::int::text, TRUE) AS statement_timeout
"""

# Every inactive job, once, through the state index: the backlog per (queue, task) and the
# stats() counts of inactive (unexpired) and delayed jobs, summed by the caller.
OBSERVE_INACTIVE: Final = """
SELECT queue, task, COUNT(*) FILTER (WHERE runnable)::bigint AS jobs,
  EXTRACT(EPOCH FROM NOW() - MIN(delayed) FILTER (WHERE runnable))::float8 AS oldest_age,
  COUNT(*) FILTER (WHERE unexpired)::bigint AS unexpired,
  COUNT(*) FILTER (WHERE delayed > NOW())::bigint AS delayed
FROM (
  SELECT queue, task, delayed, expires IS NULL OR expires > NOW() AS unexpired,
    delayed <= NOW() AND (expires IS NULL OR expires > NOW()) AS runnable
  FROM minion_jobs WHERE state = 'inactive'
) AS inactive
GROUP BY queue, task
ORDER BY queue, task
"""

# Active jobs exactly; failed and finished jobs counted along the state index up to %(limit)s
# (the ORDER BY keeps that on the index, which stops at the LIMIT). Failed jobs' end times come
# along, so their recent counts are exact whenever their total is.
OBSERVE_JOBS: Final = f"""
SELECT active.*, failed.*,
  {_count_up_to_limit("finished")} AS finished_sample,
  (SELECT COUNT(*) FROM minion_locks WHERE expires > NOW())::bigint AS active_locks,
  (SELECT COUNT(*) FROM minion_workers)::bigint AS workers,
  (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM minion_jobs_id_seq)::bigint
    AS enqueued_jobs,
  EXTRACT(EPOCH FROM NOW() - PG_POSTMASTER_START_TIME())::float8 AS uptime
FROM (
  SELECT COUNT(*)::bigint AS active_jobs, COUNT(DISTINCT worker)::bigint AS active_workers,
    COALESCE(EXTRACT(EPOCH FROM GREATEST(NOW() - MIN(started), INTERVAL '0')), 0)::float8
      AS oldest_active_age
  FROM minion_jobs WHERE state = 'active'
) AS active, (
  SELECT COUNT(*)::bigint AS failed_sample,
    COUNT(*) FILTER (WHERE finished > NOW() - INTERVAL '1 hour')::bigint AS failed_1h,
    COUNT(*) FILTER (WHERE finished > NOW() - INTERVAL '24 hours')::bigint AS failed_24h
  FROM (
    SELECT finished FROM minion_jobs WHERE state = 'failed'
    ORDER BY priority DESC, id LIMIT %(limit)s::bigint
  ) AS sample
) AS failed
"""

# Jobs that ended in the last 24 hours, read backwards along (finished, state) (schema 24; below
# it this scans the table, as history() does). The edge is the end time of the %(limit)s-th
# newest, when there are that many: the jobs after it (fewer than %(limit)s) are all counted,
# those at or before it are left to an estimate (ESTIMATE_ENDED); a window that starts at or
# after the edge is exact.
OBSERVE_ENDED: Final = """
WITH edge AS MATERIALIZED (
  SELECT (
    SELECT finished FROM minion_jobs WHERE finished > NOW() - INTERVAL '24 hours'
    ORDER BY finished DESC OFFSET %(limit)s::bigint - 1 LIMIT 1
  ) AS at
)
SELECT edge.at AS edge, NOW() - INTERVAL '1 hour' AS since_1h,
  NOW() - INTERVAL '24 hours' AS since_24h,
  COUNT(*) FILTER (WHERE state = 'finished' AND finished > NOW() - INTERVAL '1 hour')::bigint
    AS finished_1h,
  COUNT(*) FILTER (WHERE state = 'failed' AND finished > NOW() - INTERVAL '1 hour')::bigint
    AS failed_1h,
  COUNT(*) FILTER (WHERE state = 'finished')::bigint AS finished_24h,
  COUNT(*) FILTER (WHERE state = 'failed')::bigint AS failed_24h
FROM edge LEFT JOIN (
  SELECT finished, state FROM minion_jobs WHERE finished > NOW() - INTERVAL '24 hours'
  ORDER BY finished DESC LIMIT %(limit)s::bigint
) AS ended ON edge.at IS NULL OR ended.finished > edge.at
GROUP BY edge.at
"""

# The live workers and the tasks they list (beyond Perl: Python workers' status has `tasks`).
# Live: a heartbeat within two of the worker's own heartbeat intervals (%(heartbeat)s seconds
# when its status states none, as a worker registered outside a run loop; capped at a day,
# config's limit), and never less than %(at_least)s seconds. A status whose `tasks` is not an
# array lists none. Reads minion_workers only: a row per worker process of the fleet.
LIVE_WORKERS: Final = """
WITH live AS MATERIALIZED (
  SELECT CASE WHEN JSONB_TYPEOF(status -> 'tasks') = 'array' THEN status -> 'tasks' END AS tasks
  FROM minion_workers
  WHERE notified > NOW() - INTERVAL '1 second' * GREATEST(%(at_least)s::float8, 2 * LEAST(
    CASE WHEN JSONB_TYPEOF(status -> 'heartbeat_interval') = 'number'
      THEN (status ->> 'heartbeat_interval')::float8 ELSE %(heartbeat)s::float8 END,
    86400))
)
SELECT (SELECT COUNT(*) FROM live)::bigint AS workers,
  (SELECT COUNT(*) FROM live WHERE tasks IS NULL)::bigint AS unlisted,
  ARRAY(
    SELECT DISTINCT task FROM live, JSONB_ARRAY_ELEMENTS_TEXT(COALESCE(tasks, '[]')) AS task
  ) AS tasks
"""

OBSERVE_SCHEDULES: Final = """
SELECT COUNT(*) FILTER (WHERE NOT paused)::bigint AS schedules,
  COUNT(*) FILTER (WHERE paused)::bigint AS inactive_schedules
FROM minion_schedules
"""

# Only client sessions count as open transactions: an autovacuum worker's long transaction
# holds back no cleanup. Without pg_read_all_stats (pg_monitor) a role sees only its own
# sessions' xact_start.
OBSERVE_HEALTH: Final = """
SELECT n_live_tup::bigint AS live_tuples, n_dead_tup::bigint AS dead_tuples,
  EXTRACT(EPOCH FROM last_autovacuum)::float8 AS last_autovacuum,
  (SELECT EXTRACT(EPOCH FROM GREATEST(MAX(NOW() - xact_start), INTERVAL '0'))
    FROM pg_stat_activity
    WHERE datname = CURRENT_DATABASE() AND pid != PG_BACKEND_PID()
      AND backend_type = 'client backend')::float8 AS oldest_transaction_age
FROM pg_stat_user_tables WHERE relid = TO_REGCLASS('minion_jobs')
"""

# PostgreSQL's own row estimates (run unprepared, so it plans with the values): the frequency
# of the state from the last ANALYZE times the table's current size, and for ended jobs that
# times the share of end times in the range, from the histogram of `finished`.
ESTIMATE_JOBS: Final = """
EXPLAIN (FORMAT JSON) SELECT 1 FROM minion_jobs WHERE state = %(state)s::minion_state
"""

ESTIMATE_ENDED: Final = """
EXPLAIN (FORMAT JSON) SELECT 1 FROM minion_jobs
WHERE state = %(state)s::minion_state
  AND finished > %(since)s::timestamptz AND finished <= %(edge)s::timestamptz
"""

UNLOCK: Final = """
DELETE FROM minion_locks WHERE id = (
  SELECT id FROM minion_locks WHERE expires > NOW() AND name = %(name)s::text
  ORDER BY expires LIMIT 1 FOR UPDATE
)
"""

UNREGISTER_WORKER: Final = "DELETE FROM minion_workers WHERE id = %(id)s::bigint"

# Schedules (Minion 12, schema 25).

DATABASE_NOW: Final = "SELECT EXTRACT(EPOCH FROM NOW())::float8 AS now"

# Re-adding a name keeps its id, `paused` and `created`; its next run is kept unless the
# cron expression changed.
SCHEDULE: Final = """
INSERT INTO minion_schedules
  (args, attempts, cron, expire, lax, name, next_run, notes, priority, queue, task)
VALUES (
  %(args)s::jsonb, %(attempts)s::int, %(cron)s::text, %(expire)s::int, %(lax)s::bool,
  %(name)s::text, TO_TIMESTAMP(%(next_run)s::float8), %(notes)s::jsonb, %(priority)s::int,
  %(queue)s::text, %(task)s::text
)
ON CONFLICT (name) DO UPDATE SET
  args = EXCLUDED.args, attempts = EXCLUDED.attempts, cron = EXCLUDED.cron,
  expire = EXCLUDED.expire, lax = EXCLUDED.lax, notes = EXCLUDED.notes,
  priority = EXCLUDED.priority, queue = EXCLUDED.queue, task = EXCLUDED.task,
  next_run = CASE WHEN minion_schedules.cron = EXCLUDED.cron
    THEN minion_schedules.next_run ELSE EXCLUDED.next_run END
RETURNING id
"""

UNSCHEDULE: Final = "DELETE FROM minion_schedules WHERE name = %(name)s::text"

SET_SCHEDULE_PAUSED: Final = """
UPDATE minion_schedules SET paused = %(paused)s::bool WHERE name = %(name)s::text
"""

_SCHEDULE_FILTER: Final = """
WHERE (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
  AND (%(names)s::text[] IS NULL OR name = ANY(%(names)s::text[]))
"""

LIST_SCHEDULES: Final = (
    """
SELECT id, args, attempts, EXTRACT(EPOCH FROM created)::float8 AS created, cron, expire, last_job,
  EXTRACT(EPOCH FROM last_run)::float8 AS last_run, lax, name,
  EXTRACT(EPOCH FROM next_run)::float8 AS next_run, notes, paused, priority, queue, task
FROM minion_schedules
"""
    + _SCHEDULE_FILTER
    + "ORDER BY id DESC LIMIT %(limit)s::bigint OFFSET %(offset)s::bigint"
)

COUNT_SCHEDULES: Final = "SELECT COUNT(*)::bigint AS total FROM minion_schedules" + _SCHEDULE_FILTER

# The advisory key is shared with Perl's dispatcher: whichever process holds it dispatches, the
# others return at once without blocking.
TRY_DISPATCH_LOCK: Final = """
SELECT PG_TRY_ADVISORY_XACT_LOCK(HASHTEXT('minion.schedules')) AS locked
"""

DUE_SCHEDULES: Final = """
SELECT id, name, args, attempts, cron, expire, lax, notes, priority, queue, task,
  EXTRACT(EPOCH FROM next_run)::float8 AS next_run, EXTRACT(EPOCH FROM NOW())::float8 AS now
FROM minion_schedules
WHERE next_run <= NOW() AND NOT paused
FOR UPDATE
"""

SCHEDULE_DISPATCHED: Final = """
UPDATE minion_schedules
SET last_job = %(job)s::bigint, last_run = NOW(), next_run = TO_TIMESTAMP(%(next_run)s::float8)
WHERE id = %(id)s::bigint
"""

HAS_SCHEDULES: Final = "SELECT TO_REGCLASS('minion_schedules') IS NOT NULL AS present"

# Mojo::Pg::Migrations bookkeeping, shared with every Perl application on the database.

MIGRATIONS_TABLE_EXISTS: Final = "SELECT TO_REGCLASS('mojo_migrations') IS NOT NULL AS present"

ACTIVE_VERSION: Final = "SELECT version FROM mojo_migrations WHERE name = %(name)s::text"

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS mojo_migrations (
  name    TEXT PRIMARY KEY,
  version BIGINT NOT NULL CHECK (version >= 0)
)
"""

# A migration takes as long as it takes, whatever bounds its session has for other work.
MIGRATION_UNBOUNDED: Final = """
SELECT SET_CONFIG('lock_timeout', '0', TRUE), SET_CONFIG('statement_timeout', '0', TRUE)
"""
# Serialises our own migrators before they race on CREATE TABLE IF NOT EXISTS, which two
# sessions cannot run concurrently without one failing on the catalog's unique index.
MIGRATION_ADVISORY_LOCK: Final = "SELECT PG_ADVISORY_XACT_LOCK(HASHTEXT('mojo_migrations'))"

LOCK_MIGRATIONS_TABLE: Final = "LOCK TABLE mojo_migrations IN EXCLUSIVE MODE"

SET_VERSION: Final = """
INSERT INTO mojo_migrations (name, version) VALUES (%(name)s::text, %(version)s::bigint)
ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version
"""

SCHEMA_READY: Final = """
SELECT TO_REGCLASS('minion_jobs') IS NOT NULL
  AND TO_REGCLASS('minion_workers') IS NOT NULL
  AND TO_REGCLASS('minion_locks') IS NOT NULL
  AND TO_REGPROCEDURE('minion_lock(text, integer, integer)') IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = TO_REGCLASS('minion_jobs') AND attname = 'lax' AND NOT attisdropped
  ) AS ready
"""
