"""Fleet-wide limits per task, beyond Perl: what the worker needs besides Minion's own counting
locks (``lock``/``unlock``, which hold the slots and the starts; :mod:`minion_daemon.limits`).

Nothing of ours is stored: the locks are Minion's, and a job over a limit goes back to
Minion's ``inactive`` state.
"""

from __future__ import annotations

from typing import Final

from minion_daemon.backend.executor import PgExecutor
from minion_daemon.options import check_id, check_int, check_text

# A claimed job its worker may not start yet goes back to waiting as it was: `retries` (and so
# the attempts left) unchanged, as is `delayed`, so it keeps its place in line. Minion's trigger
# notifies workers only on an insert or a change of `retries`, so this wakes nobody, which is
# the point: the workers that would be woken could not start it either. Fenced by worker and
# retries: a job cancelled (or repaired) since the claim stays as that left it.
DEFER_JOB: Final = """
UPDATE minion_jobs SET state = 'inactive'
WHERE id = %(id)s::bigint AND retries = %(retries)s::int AND state = 'active'
  AND worker = %(worker)s::bigint
"""

# Seconds until the first of a lock's holders expires (NULL: none holds it), on the database's
# clock, which is the one the expiries were written on.
LOCK_EXPIRY: Final = """
SELECT EXTRACT(EPOCH FROM MIN(expires) - NOW())::float8 AS wait
FROM minion_locks WHERE name = %(name)s::text AND expires > NOW()
"""


class LimitOperations(PgExecutor):
    """Give a claimed job back to the queue untouched; tell when a lock frees up."""

    def defer_job(self, job_id: int, retries: int, worker_id: int) -> bool:
        """Make ``worker_id``'s active job ``job_id`` inactive again without using up an
        attempt; false when it is no longer that worker's active job at ``retries``."""
        params = {
            "id": check_id("defer_job: job_id", job_id),
            "retries": check_int("defer_job: retries", retries, 0, 2**31 - 1),
            "worker": check_id("defer_job: worker_id", worker_id),
        }
        return self.rowcount("defer_job", DEFER_JOB, params) > 0

    def lock_expiry(self, name: str) -> float | None:
        """Seconds until the first holder of lock ``name`` expires; ``None`` when none holds
        it."""
        params = {"name": check_text("lock_expiry: name", name, empty=True)}
        wait = self.scalar("lock_expiry", LOCK_EXPIRY, params)
        return None if wait is None else float(wait)
