"""Fleet control beyond Perl: pause a queue for every Python worker, cancel a job by id.

Paused queues live in a table of our own (``migrations/minion_daemon.sql``), never in Minion's
schema; a change is announced on our own channel, :data:`QUEUES_CHANNEL`, not Minion's
``minion.job``. Cancelling needs no table: it fails the job at once and sends Minion's own
``stop`` command to the worker running it, which Perl's workers obey as ours do.
"""

from __future__ import annotations

from typing import Final, LiteralString

from psycopg.types.json import Jsonb

from minion_daemon.backend.executor import PgExecutor
from minion_daemon.errors import JobNotFoundError
from minion_daemon.model import QueueInfo
from minion_daemon.options import check_id, check_text

#: The channel a pause or resume is announced on; a worker LISTENs on it beside ``minion.job``.
QUEUES_CHANNEL: Final = "minion_daemon.queues"
#: The version of our own tables (mojo_migrations ``minion_daemon``) that has paused queues.
PAUSED_QUEUES_VERSION: Final = 1
#: The result a cancelled job is recorded with.
JOB_CANCELLED: Final = "Job cancelled"

PAUSE_QUEUE: Final = """
WITH paused AS (
  INSERT INTO minion_daemon_paused_queues (queue) VALUES (%(queue)s::text)
  ON CONFLICT (queue) DO NOTHING RETURNING queue
)
SELECT pg_notify(%(channel)s::text, queue) FROM paused
"""

RESUME_QUEUE: Final = """
WITH resumed AS (
  DELETE FROM minion_daemon_paused_queues WHERE queue = %(queue)s::text RETURNING queue
)
SELECT pg_notify(%(channel)s::text, queue) FROM resumed
"""

PAUSED_QUEUES: Final = "SELECT queue FROM minion_daemon_paused_queues ORDER BY queue"

LISTEN_QUEUES: Final = f'LISTEN "{QUEUES_CHANNEL}"'

QUEUE_LOADS: Final = """
SELECT queue,
  count(*) FILTER (
    WHERE state = 'inactive' AND delayed <= NOW() AND (expires IS NULL OR expires > NOW())
  ) AS backlog,
  count(*) FILTER (WHERE state = 'active') AS running
FROM minion_jobs WHERE state IN ('inactive', 'active')
GROUP BY queue
"""

# Perl's worker status has no `type`; ours says `type: Python`. A status without `queues`
# serves Minion's default queue.
PERL_WORKERS_OF_QUEUE: Final = """
SELECT count(*) FROM minion_workers
WHERE status->>'type' IS DISTINCT FROM 'Python'
  AND COALESCE(status->'queues', '["default"]'::jsonb) ? %(queue)s::text
"""

# The row is locked first, so the state tested is the state changed: a job that finished
# before the lock stays finished, one that was inactive or active is failed for good (no
# retry). The worker of an active job gets Minion's `stop` (KILL the job's process); its
# later failure record is fenced off by the state, which is no longer active.
CANCEL_JOB: Final = """
WITH target AS (
  SELECT id, retries, state, worker FROM minion_jobs WHERE id = %(id)s FOR UPDATE
), cancelled AS (
  UPDATE minion_jobs AS job SET state = 'failed', result = %(result)s, finished = NOW()
  FROM target
  WHERE job.id = target.id AND job.retries = target.retries
    AND target.state IN ('inactive', 'active')
  RETURNING target.state AS previous, target.worker
), stopped AS (
  UPDATE minion_workers SET inbox = inbox || jsonb_build_array(jsonb_build_array('stop', %(id)s))
  WHERE id = (SELECT worker FROM cancelled WHERE previous = 'active')
)
SELECT (SELECT count(*) FROM target) AS found, (SELECT count(*) FROM cancelled) AS cancelled
"""


class FleetOperations(PgExecutor):
    """Pause, resume and list queues (our own table) and cancel jobs (Minion's tables)."""

    def pause_queue(self, name: str) -> bool:
        """Stop every Python worker claiming from queue ``name``; false if already paused."""
        return self._change_queue("pause_queue", PAUSE_QUEUE, name)

    def resume_queue(self, name: str) -> bool:
        """Let Python workers claim from queue ``name`` again; false if it was not paused."""
        return self._change_queue("resume_queue", RESUME_QUEUE, name)

    def _change_queue(self, op: str, query: LiteralString, name: str) -> bool:
        params = {"queue": check_text(f"{op}: name", name, empty=True), "channel": QUEUES_CHANNEL}
        self.require_own_tables(op, "paused queues", PAUSED_QUEUES_VERSION)
        return self.rowcount(op, query, params) > 0

    def paused_queues(self) -> list[str]:
        """The paused queues, by name; none without our own tables."""
        if self.own_schema_version == 0:
            return []
        return [row["queue"] for row in self.rows("paused_queues", PAUSED_QUEUES)]

    def list_queues(self) -> list[QueueInfo]:
        """Every queue with inactive or active jobs or paused, by name."""
        paused = set(self.paused_queues())
        loads = {row["queue"]: row for row in self.rows("list_queues", QUEUE_LOADS)}
        return [
            {
                "queue": queue,
                "backlog": int(loads[queue]["backlog"]) if queue in loads else 0,
                "running": int(loads[queue]["running"]) if queue in loads else 0,
                "paused": queue in paused,
            }
            for queue in sorted(paused | loads.keys())
        ]

    def perl_workers_of_queue(self, name: str) -> int:
        """Registered workers that are not ours (Perl's) and serve queue ``name``."""
        params = {"queue": check_text("perl_workers_of_queue: name", name, empty=True)}
        return int(self.scalar("perl_workers_of_queue", PERL_WORKERS_OF_QUEUE, params))

    def cancel_job(self, job_id: int) -> bool:
        """Fail an inactive or active job with "Job cancelled", without retry, and stop its
        process; false when it had already finished or failed. Raises
        :class:`JobNotFoundError` for an unknown id."""
        params = {"id": check_id("cancel_job: id", job_id), "result": Jsonb(JOB_CANCELLED)}
        row = self.row("cancel_job", CANCEL_JOB, params)
        if row is None or not row["found"]:
            raise JobNotFoundError(f"job {job_id} does not exist")
        return bool(row["cancelled"])
