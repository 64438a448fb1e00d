-- minion-daemon's own tables, beside Minion's and never part of them. Perl's Minion neither
-- reads nor migrates them: they are recorded in mojo_migrations under the name minion_daemon,
-- and Minion's schema version (name minion) stays exactly Perl's.

-- 1 up
CREATE TABLE IF NOT EXISTS minion_daemon_paused_queues (
  queue  TEXT PRIMARY KEY,
  paused TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);

-- 1 down
DROP TABLE IF EXISTS minion_daemon_paused_queues;

-- 2 up
-- Unique jobs: which job holds each key. Whether it still holds it is read from minion_jobs
-- (Perl's workers finish jobs without a look at this table); `created` is that job's own
-- creation time, so that a job id handed out again after Minion's reset (which restarts the
-- ids) is not taken for the job that held the key.
CREATE TABLE IF NOT EXISTS minion_daemon_unique_jobs (
  key     TEXT PRIMARY KEY,
  job_id  BIGINT NOT NULL,
  created TIMESTAMP WITH TIME ZONE NOT NULL
);

-- 2 down
DROP TABLE IF EXISTS minion_daemon_unique_jobs;
